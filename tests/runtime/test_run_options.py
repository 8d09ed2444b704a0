"""`cvm-operator run` refuses bad account options before it connects to anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvm_operator.cli import main


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, **env: str) -> tuple[int, str]:
    for name in os.environ:
        if name.startswith(("TENCENTCLOUD_", "TKE_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(["run", "--all-namespaces", "--metrics-port", "0", *args])
    except SystemExit as exit:  # argparse refuses the option itself
        code = int(exit.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--default-credentials-namespaces", "team in (a"], {}, "unbalanced '('"),
        (["--default-credentials-namespaces", ""], {}, "the selector is empty"),
        (["--assume-role-arn", "qcs::cam::uin/1:roleName/r"], {}, "needs TENCENTCLOUD_SECRET_ID"),
        (["--role-session-duration", "50000"], {}, "1..43200"),
        ([], {"TKE_REGION": "ap-guangzhou", "TKE_ROLE_ARN": "qcs::cam::uin/1:roleName/r"}, "TKE_PROVIDER_ID"),
        ([], {"TENCENTCLOUD_SECRET_ID": "AKIDx"}, "TENCENTCLOUD_SECRET_KEY is not"),
    ],
)
def test_bad_account_options_stop_the_start(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    code, stderr = run(monkeypatch, capsys, *args, **env)
    assert code == 2 and message in stderr, stderr


def test_a_missing_token_file_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, stderr = run(
        monkeypatch, capsys, TKE_REGION="ap-guangzhou", TKE_PROVIDER_ID="p", TKE_ROLE_ARN="qcs::cam::uin/1:roleName/r",
        TKE_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "absent"),
    )  # fmt: skip
    assert code == 2 and "web identity" in stderr, stderr
