"""docker/ without a Docker engine: the compose file validates against the Compose
specification (``compose-spec``, a strict parser), its references resolve, and the
image installs through the same script as ``make install``."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import yaml
from compose_spec import PyCompose

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def compose() -> dict:
    # yaml.safe_load resolves the `<<` merge keys, as Compose does when it reads the file.
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_file_validates_against_the_spec() -> None:
    doc = compose()
    spec = PyCompose.from_json(json.dumps(doc)).to_spec()  # raises on anything invalid
    assert set(spec.services) == {"kafka", "topics", "jobmanager", "taskmanager", "join",
                                  "train", "serve", "prometheus"}


def test_compose_references_resolve() -> None:
    doc = compose()
    services, volumes = doc["services"], set(doc.get("volumes") or {})
    for name, s in services.items():
        for dep in s.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
        for v in s.get("volumes") or []:
            src = v.split(":")[0]
            if src.startswith("."):
                assert (DOCKER / src).exists(), f"{name} mounts missing {src}"
            else:
                assert src in volumes, f"{name} uses undeclared volume {src}"
        for port in s.get("ports") or []:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        if "build" in s:
            assert (DOCKER / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
    # Real Apache Kafka in KRaft mode (no ZooKeeper), and Flink from the project's image.
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    # The same Kafka as the embedded broker (jvm/pom.xml).
    pom = (ROOT / "jvm" / "pom.xml").read_text()
    embedded = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    assert kafka["image"] == f"apache/kafka:{embedded}"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not any("zookeeper" in json.dumps(s).lower() for s in services.values())
    assert services["jobmanager"]["command"] == ["jobmanager"]
    assert services["taskmanager"]["command"] == ["taskmanager"]
    # Checkpoints on one volume every JobManager and TaskManager shares.
    for name in ("jobmanager", "taskmanager"):
        assert "checkpoints:/checkpoints" in services[name]["volumes"]
    flink = yaml.safe_load(services["jobmanager"]["environment"]["FLINK_PROPERTIES"])
    assert flink["execution.checkpointing.dir"] == "file:///checkpoints"
    # Prometheus scrapes the serving process.
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for c in job.get("static_configs", [])
               for t in c["targets"]]
    assert "serve:8080" in targets
    assert all(t.split(":")[0] in services for t in targets)


def test_dockerfile_uses_the_install_script_and_matching_flink() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    # The one install script: the image and `make install` run the same file.
    assert re.search(r"^RUN .*scripts/install\.sh", text, re.M | re.S)
    assert "CONNECTOR_LIB=/opt/flink/lib" in text
    assert re.search(r"^\t.*scripts/install\.sh", makefile, re.M)
    assert "pip install" not in makefile  # no second copy of the install steps
    # The cluster's Flink matches the PyFlink the workers run.
    lock = (ROOT / "requirements/lock.txt").read_text()
    pyflink = re.search(r"^apache-flink==(\S+)$", lock, re.M).group(1)
    assert f"flink:{pyflink}-" in text
    # Every COPY source exists and is not excluded from the build context.
    ignore = [ln for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
              if ln and not ln.startswith("#")]

    def sent(path: str) -> bool:
        keep = True
        for pattern in ignore:
            neg = pattern.startswith("!")
            pat = pattern.lstrip("!")
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.removesuffix("/**")):
                keep = neg
        return keep

    copies = re.findall(r"^COPY (?!--from)(\S+) \S+$", text, re.M)
    copies += [w for line in re.findall(r"^COPY (.+) \./$", text, re.M) for w in line.split()]
    assert len(copies) >= 8
    for src in copies:
        assert (ROOT / src).exists(), src
        assert sent(src), f"{src} is excluded by Dockerfile.dockerignore"
    assert (ROOT / "scripts/install.sh").stat().st_mode & 0o111  # executable
