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
#   CONNECTOR_LIB  also put the Kafka connector jar and freshet-udfs.jar here (a Flink
#                  distribution's lib/); they always go into the venv's pyflink/lib
#                  (mini-cluster, flink run)
# Needs a JDK 17 and Maven: the JVM side (jvm/: the embedded Kafka broker, Flink's Kafka
# connector, Freshet's Java functions) comes from Maven Central, cached in ~/.m2.
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
# The JVM side from Maven Central (`mvn package` over jvm/, freshet/jvm.py): the broker's
# classpath, and the Kafka connector + freshet-udfs.jar copied into pyflink/lib.
"$PY" -m freshet.jvm ${CONNECTOR_LIB:+"$CONNECTOR_LIB"}
