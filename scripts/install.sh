#!/usr/bin/env bash
# The one install script: `make install` (and so `make demo`/`make test`) and
# docker/Dockerfile both run it, so a laptop, CI and the cluster image get the same
# pinned environment.
#
#   scripts/install.sh                      # .venv in the checkout, for development
#   PYTHON=python3.11 VENV=/opt/freshet/.venv CONNECTOR_LIB=/opt/flink/lib scripts/install.sh
#
# Environment:
#   PYTHON         interpreter that creates the venv when it is missing (default python3)
#   VENV           the virtualenv (default .venv, relative to the checkout)
#   CONNECTOR_LIB  also put the Kafka connector jars and freshet-udfs.jar here (a Flink
#                  distribution's lib/); they always go into the venv's pyflink/lib
#                  (mini-cluster, flink run)
# Idempotent: a second run only re-checks what is installed.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$PY" -m pip install -q --upgrade pip==24.3.1
# Exact versions of everything (requirements/lock.txt), then the project itself without
# letting pip re-resolve anything.
"$PY" -m pip install -q -r requirements/lock.txt
"$PY" -m pip install -q --no-deps -e .
# Flink's Kafka connector: two jars from a PyPI wheel (Maven Central is not reachable
# from our machines; freshet/connector.py says why only those two).
"$PY" -m freshet.connector
# The joiner's Java SQL functions (udfs/java), compiled with the JDK's javac against
# the jars PyFlink ships (freshet/udf_jar.py).
"$PY" -m freshet.udf_jar
if [ -n "${CONNECTOR_LIB:-}" ]; then
    mkdir -p "$CONNECTOR_LIB"
    "$PY" -c 'import sys; from pathlib import Path; from freshet.connector import install; install(Path(sys.argv[1]))' "$CONNECTOR_LIB"
    "$PY" -c 'import sys; from pathlib import Path; from freshet.udf_jar import ensure; ensure(Path(sys.argv[1]))' "$CONNECTOR_LIB"
fi
