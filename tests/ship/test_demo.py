"""`make demo` end to end: hack/demo.py with DEMO_EXIT=1 in a subprocess, on its own control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hack" / "demo.py"


def processes_of(directory: Path) -> dict[int, str]:
    """Live processes whose command line or environment names ``directory``."""
    needle = str(directory).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def demo_env(directory: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    return dict(env, DEMO_DIR=str(directory), DEMO_EXIT="1", PYTHONUNBUFFERED="1", **extra)


def assert_nothing_left(directory: Path) -> None:
    leftovers = processes_of(directory)
    for pid in leftovers:  # do not leak them into the rest of the session
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"the demo left processes behind: {leftovers}"


@pytest.mark.operator
@pytest.mark.timeout(900)
def test_demo_exits_zero_once_everything_is_ready(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO)],
        env=demo_env(directory, DEMO_TIMEOUT="420"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=800,
    )
    output = result.stdout + result.stderr
    assert_nothing_left(directory)
    assert result.returncode == 0, output[-8000:]
    assert "objects Ready" in result.stdout, output[-8000:]
    for kind in (
        "Image/web-golden ",
        "ImageShare/web-golden-share ",
        "ImageCopy/web-golden-copies ",
        "Instance/web-1 ",
        "InstanceSet/web-fleet ",
    ):
        assert kind in result.stdout, f"{kind.strip()} missing from the table:\n{result.stdout[-6000:]}"
    assert "everything stopped" in result.stdout


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_demo_timeout_reports_what_is_not_ready_and_cleans_up(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--realistic"],  # minutes per step: nothing is Ready within 3 s
        env=demo_env(directory, DEMO_TIMEOUT="3"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert_nothing_left(directory)
    assert result.returncode == 1, result.stdout[-6000:] + result.stderr[-4000:]
    assert "not everything is Ready after 3s" in result.stdout
    assert "Instance cvm-demo/web-1: phase" in result.stdout


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    env = demo_env(directory)
    env.pop("DEMO_EXIT")
    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(DEMO), "--realistic"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
            # As from a terminal: a test worker may ignore SIGINT, and a child would inherit that.
            preexec_fn=_default_sigint,
        )
    try:
        deadline = time.monotonic() + 180
        while "try it yourself" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")[-6000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-6000:]
            time.sleep(0.2)
        assert processes_of(directory), "the demo's processes should be running now"
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_nothing_left(directory)
    assert returncode == 130, log.read_text(errors="replace")[-6000:]
    assert "everything stopped" in log.read_text()
