"""Freshet's JVM side, resolved from Maven Central and built by Maven (``jvm/``).

- ``jvm/broker``: the classpath of the embedded Apache Kafka broker
  (:mod:`freshet.broker` runs ``java -cp <broker-lib>/* kafka.Kafka``);
- ``jvm/flink``: Freshet's Java functions for Flink (``udfs/java``: the joiner's SQL
  functions, its batching operator, the examples partitioner) as ``freshet-udfs.jar``,
  and the official Kafka connector for this Flink, the uber ``flink-sql-connector-kafka``
  jar (Kafka's client classes shaded inside, the names PyFlink's Python API refers to).

:func:`ensure` builds what is missing or out of date (``mvn package``; the first build
downloads ~130 MB into ``~/.m2``, later ones are offline) and copies the two Flink jars
into ``pyflink/lib``, where the mini-cluster, ``flink run`` and a standalone cluster
started from the pip install all find them. It runs at install time
(``scripts/install.sh``) and before a job's JVM starts (:mod:`freshet.flink`): the jars
must be on the classpath before the JVM does.

Examples
--------
>>> len(sources_hash()) == 64
True
>>> broker_classpath().endswith("broker-lib/*")
True
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from freshet.errors import FreshetError

ROOT = Path(__file__).resolve().parents[1]
JVM = ROOT / "jvm"
JAVA_SOURCES = ROOT / "udfs" / "java"
BROKER_LIB = JVM / "broker" / "target" / "broker-lib"
FLINK_LIB = JVM / "flink" / "target" / "flink-lib"
UDF_JAR = JVM / "flink" / "target" / "freshet-udfs.jar"
CONNECTOR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
# Jars an earlier install put into pyflink/lib (a thin connector from a PyPI wheel).
OBSOLETE = ("flink-connector-kafka.jar", "kafka-clients.jar")
_STAMP = JVM / "target" / "built.sha256"


class JvmBuildError(FreshetError, RuntimeError):
    """Maven could not build the JVM side."""


def sources_hash() -> str:
    """A hash of everything the build reads: the poms, and the Java sources."""
    h = hashlib.sha256()
    files = sorted(JVM.rglob("pom.xml")) + sorted(JAVA_SOURCES.rglob("*.java"))
    for path in files:
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def broker_classpath() -> str:
    return str(BROKER_LIB / "*")


def pyflink_lib() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent / "lib"


def flink_jars() -> list[Path]:
    """The jars Flink needs on top of flink-dist: the Kafka connector and Freshet's."""
    return [FLINK_LIB / CONNECTOR, UDF_JAR]


def mvn() -> str:
    found = shutil.which("mvn")
    if not found:
        raise JvmBuildError(
            "mvn not found: Freshet's JVM side (the Kafka broker, Flink's Kafka connector, "
            "the joiner's Java functions) is built with Maven; install it (Debian: apt-get "
            "install maven) with a JDK 17")
    return found


def build(quiet: bool = True) -> None:
    """``mvn package`` over ``jvm/`` (offline when everything is in ``~/.m2`` already)."""
    cmd = [mvn(), "-B", "-f", str(JVM / "pom.xml"), "package"] + (["-q"] if quiet else [])
    run = subprocess.run(cmd + ["-o"], capture_output=True, text=True)
    if run.returncode != 0:  # something is not in the local repository yet: go online
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise JvmBuildError(f"mvn package failed:\n{(run.stdout + run.stderr)[-4000:]}")
    _STAMP.parent.mkdir(parents=True, exist_ok=True)
    _STAMP.write_text(sources_hash())


def built() -> bool:
    return (_STAMP.is_file() and _STAMP.read_text() == sources_hash()
            and BROKER_LIB.is_dir() and all(p.is_file() for p in flink_jars()))


def install(lib: Path | None = None) -> Path:
    """Copy the Flink jars into ``lib`` (default ``pyflink/lib``) unless they are there."""
    lib = lib or pyflink_lib()
    lib.mkdir(parents=True, exist_ok=True)
    for name in OBSOLETE:
        (lib / name).unlink(missing_ok=True)
    for jar in flink_jars():
        target = lib / jar.name
        if not target.is_file() or target.read_bytes() != jar.read_bytes():
            partial = target.with_suffix(".jar.part")
            shutil.copyfile(jar, partial)
            partial.replace(target)  # atomic: a crash never leaves a half jar
    return lib


def ensure(lib: Path | None = None, quiet: bool = True) -> Path:
    """Build what is missing or stale, and install the Flink jars; returns their dir."""
    if not built():
        if not quiet:
            print(f"building {JVM} with Maven ...", flush=True)
        build()
    return install(lib)


if __name__ == "__main__":
    extra = [Path(p) for p in sys.argv[1:]]  # more lib dirs (a Flink distribution's lib/)
    print(f"JVM side built; Flink jars in {ensure(quiet=False)}", flush=True)
    for d in extra:
        print(f"Flink jars in {install(d)}", flush=True)
