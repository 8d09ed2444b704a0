"""STS (2018-08-13) subset: GetCallerIdentity, so a client can learn the account id behind its keys
(the Tag API names CVM resources by owner account id).

Every built-in account's keys are the account's own (root) keys: the caller is the root account.
"""

from __future__ import annotations

from typing import Any

from .context import Call, Emulator

API_VERSION = "2018-08-13"
SERVICE = "sts"
ROOT_ACCOUNT = "RootAccount"


def root_arn(account_id: str) -> str:
    return f"qcs::cam::uin/{account_id}:root"


def get_caller_identity(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    account_id = call.account.account_id
    return {
        "Arn": root_arn(account_id),
        "AccountId": account_id,
        "UserId": account_id,
        "PrincipalId": account_id,
        "Type": ROOT_ACCOUNT,
    }


ACTIONS = {"GetCallerIdentity": get_caller_identity}
READ_ONLY = frozenset(ACTIONS)
