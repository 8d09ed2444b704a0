"""STS (2018-08-13) subset: GetCallerIdentity, so a client can learn the account id behind its keys (the
Tag API names CVM resources by owner account id), and AssumeRole / AssumeRoleWithWebIdentity, which issue
temporary credentials for a configured role (rules in :mod:`identity`).

Every built-in account's keys are the account's own (root) keys: the caller is the root account.
AssumeRoleWithWebIdentity is not signed (the web identity token is the proof), as on the real service.
"""

from __future__ import annotations

from typing import Any

from . import identity
from .backend.emulator import Emulator
from .context import Call, iso_time

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


def _issue(emu: Emulator, call: Call, role: identity.Role, params: dict[str, Any]) -> dict[str, Any]:
    seconds = identity.check_session_request(role, str(params["RoleSessionName"]), params.get("DurationSeconds"))
    session = identity.issue_session(emu.store.conn, role, str(params["RoleSessionName"]), seconds, call.now)
    return {
        "Credentials": {
            "Token": session.token,
            "TmpSecretId": session.secret_id,
            "TmpSecretKey": session.secret_key,
        },
        "ExpiredTime": int(session.expires_at),
        "Expiration": iso_time(session.expires_at),
    }


def assume_role(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    role = identity.find_role(emu.config.roles, str(params["RoleArn"]))
    identity.check_account_trust(role, call.account.account_id)
    return _issue(emu, call, role, params)


def assume_role_with_web_identity(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    provider = identity.find_provider(emu.config.oidc_providers, str(params["ProviderId"]))
    claims = identity.verify_web_identity(provider, str(params["WebIdentityToken"]), call.now)
    role = identity.find_role(emu.config.roles, str(params["RoleArn"]))
    identity.check_web_identity_trust(role, provider, claims)
    return _issue(emu, call, role, params)


ACTIONS = {
    "GetCallerIdentity": get_caller_identity,
    "AssumeRole": assume_role,
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
}
READ_ONLY = frozenset({"GetCallerIdentity"})
UNSIGNED = frozenset({"AssumeRoleWithWebIdentity"})
