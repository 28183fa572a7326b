"""Installs Flink's Kafka connector jars from PyPI (Maven Central is not reachable here).

PyFlink ships no Kafka connector. The wheel ``shigawire-apache-flink-libraries``
carries ``flink-connector-kafka.jar`` (4.0.1-2.0) and ``kafka-clients.jar`` (3.9.1);
it also carries ~50 Flink 2.0.0 jars that would shadow flink-dist 2.0.2, so it is
never pip-installed: we download it and unzip only the two jars into ``pyflink/lib``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")


class ConnectorError(RuntimeError):
    """The Kafka connector jars could not be installed."""


def pyflink_lib() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent / "lib"


def installed(lib: Path | None = None) -> bool:
    lib = lib or pyflink_lib()
    return all((lib / j).is_file() and (lib / j).stat().st_size > 0 for j in JARS)


def install(lib: Path | None = None, quiet: bool = False) -> Path:
    """Put the two jars into ``lib`` (default ``pyflink/lib``); a no-op if present."""
    lib = lib or pyflink_lib()
    if installed(lib):
        return lib
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", tmp]
        run = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            raise ConnectorError(
                f"could not download {WHEEL} from PyPI (needed for the Kafka connector):\n"
                f"{run.stderr.strip()[-2000:]}"
            )
        with zipfile.ZipFile(wheels[0]) as z:
            for jar in JARS:
                member = f"pyflink/lib/{jar}"
                if member not in z.namelist():
                    raise ConnectorError(f"{wheels[0].name} has no {member}")
                target = lib / jar
                partial = target.with_suffix(".jar.part")
                partial.write_bytes(z.read(member))
                partial.replace(target)  # atomic: a crash never leaves a half jar
    if not quiet:
        print(f"installed {', '.join(JARS)} into {lib}")
    return lib


if __name__ == "__main__":
    install()
