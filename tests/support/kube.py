"""Running the control plane's own kubectl from tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_kubectl: Path | None = None
_kubeconfig: Path | None = None


def configure(kubectl_path: Path, kubeconfig: Path) -> None:
    global _kubectl, _kubeconfig
    _kubectl, _kubeconfig = kubectl_path, kubeconfig


def kubectl(
    *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the test control plane; raises with its stderr when ``check`` and it fails."""
    if _kubectl is None or _kubeconfig is None:
        raise RuntimeError("the controlplane fixture has not started a control plane yet")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig or _kubeconfig))
    result = subprocess.run(
        [str(_kubectl), *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result
