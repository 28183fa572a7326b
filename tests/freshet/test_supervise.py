import signal
import sys
from pathlib import Path

import pytest

from freshet.supervise import Service, ServiceError

# A child that starts a grandchild, reports the grandchild's pid, then sleeps.
PARENT = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('grandchild', g.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it


def test_stop_ends_the_child_and_what_it_started(tmp_path: Path) -> None:
    svc = Service("parent", [sys.executable, "-c", PARENT], log_dir=tmp_path).start()
    svc.wait_for("grandchild", timeout_s=20)
    grandchild = int(svc.log_path.read_text().split()[1])
    assert svc.running and _alive(grandchild)
    assert svc.stop(timeout_s=10) == -signal.SIGTERM
    assert not svc.running
    assert not _alive(grandchild)


def test_early_exit_is_reported_with_the_log(tmp_path: Path) -> None:
    code = "import sys; print('boom: bad config', flush=True); sys.exit(3)"
    svc = Service("failing", [sys.executable, "-c", code], log_dir=tmp_path).start()
    with pytest.raises(ServiceError, match="(?s)exit code 3.*boom: bad config"):
        svc.wait_for("ready", timeout_s=20)
