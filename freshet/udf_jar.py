"""Builds Freshet's Java SQL functions (``udfs/java``) into a jar in ``pyflink/lib``.

The joiner parses every record with them (``sql/functions.sql``): Flink's built-in JSON
functions and regular expressions cost more than reading the record (docs/joiner.md).
Maven Central is not reachable here, so the jar is compiled with the JDK's ``javac``
against the jars PyFlink ships; nothing is downloaded. The jar records a hash of its
sources, so a changed source is rebuilt by the next ``ensure()`` (install, or a job
start).

Examples
--------
>>> len(sources_hash()) == 64
True
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

JAR = "freshet-udfs.jar"
SOURCES = Path(__file__).resolve().parents[1] / "udfs" / "java"
_HASH_KEY = "Freshet-Sources-SHA256"


class UdfJarError(RuntimeError):
    """The Java functions could not be built."""


def sources_hash(root: Path = SOURCES) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.java")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _built_hash(jar: Path) -> str | None:
    try:
        with zipfile.ZipFile(jar) as z:
            manifest = z.read("META-INF/MANIFEST.MF").decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for line in manifest.splitlines():
        if line.startswith(_HASH_KEY + ":"):
            return line.split(":", 1)[1].strip()
    return None


def javac() -> str:
    """The JDK's compiler: on the PATH, else under JAVA_HOME."""
    found = shutil.which("javac")
    home = os.environ.get("JAVA_HOME")
    if not found and home and (Path(home) / "bin" / "javac").is_file():
        found = str(Path(home) / "bin" / "javac")
    if not found:
        raise UdfJarError(
            "javac not found: the joiner's SQL functions are compiled at install time; "
            "install a JDK 11+ (Debian: apt-get install openjdk-17-jdk-headless)"
        )
    return found


def build(lib: Path) -> Path:
    """Compile ``udfs/java`` against ``lib``'s Flink jars into ``lib/freshet-udfs.jar``."""
    sources = sorted(str(p) for p in SOURCES.rglob("*.java"))
    digest = sources_hash()
    with tempfile.TemporaryDirectory(prefix="freshet-udfs-") as tmp:
        classes = Path(tmp) / "classes"
        cmd = [javac(), "--release", "11", "-Xlint:all,-processing",
               "-encoding", "UTF-8", "-d", str(classes), "-cp", str(lib / "*"), *sources]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise UdfJarError(f"javac failed:\n{run.stdout}{run.stderr}")
        target = lib / JAR
        partial = target.with_suffix(".jar.part")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF",
                       f"Manifest-Version: 1.0\n{_HASH_KEY}: {digest}\n")
            for cls in sorted(classes.rglob("*.class")):
                z.write(cls, cls.relative_to(classes).as_posix())
        partial.replace(target)  # atomic: a crash never leaves a half jar
    return target


def ensure(lib: Path | None = None, quiet: bool = True) -> Path:
    """The jar in ``lib`` (default ``pyflink/lib``), built if missing or out of date."""
    from freshet.connector import pyflink_lib

    lib = lib or pyflink_lib()
    jar = lib / JAR
    if _built_hash(jar) == sources_hash():
        return jar
    build(lib)
    if not quiet:
        print(f"built {jar} from {SOURCES}")
    return jar


if __name__ == "__main__":
    ensure(quiet=False)
