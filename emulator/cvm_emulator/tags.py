"""Tag API (2018-08-13) subset for CVM images and instances: ModifyResourceTags, TagResources,
UnTagResources and GetResources.

Tags live in the same tables the CVM actions use (``image_tags``, ``instance_tags``), so a change made
here shows in DescribeImages/DescribeInstances at once. Resources are named in the six-segment form
``qcs::cvm:<region>:uin/<account id>:image/<img-id>`` (or ``instance/<ins-id>``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .backend.emulator import Emulator
from .context import Call
from .errors import ApiError
from .ids import IMAGE_ID_RE, INSTANCE_ID_RE
from .images import MAX_TAGS

API_VERSION = "2018-08-13"
SERVICE = "tag"

MAX_RESOURCES_PER_REQUEST = 10
MAX_TAGS_PER_REQUEST = 10
MAX_TAG_FILTERS = 6
MAX_TAG_FILTER_VALUES = 10
MAX_RESULTS = 200
DEFAULT_RESULTS = 50
MAX_KEY_LENGTH = 127
MAX_VALUE_LENGTH = 255
# System tag keys: these words alone or followed by ':' (e.g. ``qcloud:...``) cannot be set by users.
RESERVED_KEY_WORDS = ("qcloud", "tencent", "project")
# Letters (any script), digits, spaces and + - = . _ : / @ are allowed in keys and values.
_TAG_TEXT_RE = re.compile(r"^[\w \-+=.:/@]*$")
_UIN_RE = re.compile(r"^(?:uin/)?(\d+)$")


@dataclass(frozen=True)
class ResourceName:
    region: str
    account_id: str
    kind: str
    """``image`` or ``instance``."""
    resource_id: str

    def __str__(self) -> str:
        return f"qcs::cvm:{self.region}:uin/{self.account_id}:{self.kind}/{self.resource_id}"


def parse_resource(emu: Emulator, text: str) -> ResourceName:
    """A six-segment CVM resource name, or the error the Tag API gives for a malformed one."""
    segments = text.split(":")
    if len(segments) != 6 or segments[0] != "qcs" or segments[1] != "" or "/" not in segments[5]:
        raise ApiError(
            "InvalidParameterValue.ResourceDescriptionError",
            f"{text!r} is not a six-segment resource description (qcs::<service>:<region>:uin/<uin>:<type>/<id>).",
        )
    service, region, account, last = segments[2], segments[3], segments[4], segments[5]
    if service != "cvm":
        raise ApiError("InvalidParameter.UnsupportedService", f"The service {service!r} is not supported here.")
    if region not in emu.catalogue.regions:
        raise ApiError("InvalidParameterValue.RegionInvalid", f"The region {region!r} in {text!r} does not exist.")
    uin = _UIN_RE.match(account)
    if uin is None:
        raise ApiError("InvalidParameterValue.UinInvalid", f"The account segment {account!r} is not `uin/<id>`.")
    kind, _, resource_id = last.partition("/")
    id_pattern = {"image": IMAGE_ID_RE, "instance": INSTANCE_ID_RE}.get(kind)
    if id_pattern is None:
        raise ApiError(
            "InvalidParameterValue.ResourcePrefixInvalid", f"The resource prefix {kind!r} must be image or instance."
        )
    if not id_pattern.match(resource_id):
        raise ApiError("InvalidParameterValue.ResourceIdInvalid", f"The resource id {resource_id!r} is malformed.")
    return ResourceName(region, uin.group(1), kind, resource_id)


def _check_key(key: str) -> None:
    if not key:
        raise ApiError("InvalidParameterValue.TagKeyEmpty", "A tag key must not be empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            "InvalidParameterValue.TagKeyLengthExceeded", f"The tag key {key!r} is longer than {MAX_KEY_LENGTH}."
        )
    if not _TAG_TEXT_RE.match(key):
        raise ApiError("InvalidParameterValue.TagKeyCharacterIllegal", f"The tag key {key!r} has illegal characters.")


def _check_new_key(key: str) -> None:
    _check_key(key)
    if key.lower().split(":", 1)[0] in RESERVED_KEY_WORDS:
        raise ApiError(
            "InvalidParameterValue.ReservedTagKey", f"The tag key {key!r} starts with a reserved prefix (qcloud, ...)."
        )


def _check_value(key: str, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise ApiError(
            "InvalidParameterValue.TagValueLengthExceeded",
            f"The value of tag {key!r} is longer than {MAX_VALUE_LENGTH}.",
        )
    if not _TAG_TEXT_RE.match(value):
        raise ApiError(
            "InvalidParameterValue.TagValueCharacterIllegal", f"The value of tag {key!r} has illegal characters."
        )


def _tag_pairs(tags: Sequence[dict[str, Any]], member: str) -> dict[str, str]:
    if not tags:
        raise ApiError("InvalidParameter.Tag", f"`{member}` may be omitted but must not be an empty array.")
    if len(tags) > MAX_TAGS_PER_REQUEST:
        raise ApiError("LimitExceeded.TagNumPerRequest", f"At most {MAX_TAGS_PER_REQUEST} tags per request.")
    pairs: dict[str, str] = {}
    for tag in tags:
        key, value = tag["TagKey"], tag["TagValue"]
        _check_new_key(key)
        _check_value(key, value)
        if key in pairs:
            raise ApiError("InvalidParameterValue.TagKeyDuplicate", f"The tag key {key!r} is given twice.")
        pairs[key] = value
    return pairs


def _tag_keys(keys: Iterable[str], member: str) -> list[str]:
    result = list(keys)
    if not result:
        raise ApiError("InvalidParameter.Tag", f"`{member}` may be omitted but must not be an empty array.")
    if len(result) > MAX_TAGS_PER_REQUEST:
        raise ApiError("LimitExceeded.TagNumPerRequest", f"At most {MAX_TAGS_PER_REQUEST} tag keys per request.")
    for key in result:
        _check_key(key)
    return list(dict.fromkeys(result))


def _resource_list(emu: Emulator, resources: Sequence[str]) -> list[ResourceName]:
    if len(resources) > MAX_RESOURCES_PER_REQUEST:
        raise ApiError(
            "LimitExceeded.ResourceNumPerRequest", f"At most {MAX_RESOURCES_PER_REQUEST} resources per request."
        )
    return [parse_resource(emu, text) for text in dict.fromkeys(resources)]


# ---------------------------------------------------------------- storage (the CVM tag tables)


def _exists(conn: sqlite3.Connection, name: ResourceName) -> bool:
    if name.kind == "image":
        row = conn.execute(
            "SELECT 1 FROM images WHERE image_id = ? AND region = ? AND owner = ? AND image_type = 'PRIVATE_IMAGE'",
            (name.resource_id, name.region, name.account_id),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT 1 FROM instances WHERE instance_id = ? AND region = ? AND owner = ? AND state != 'TERMINATED'",
            (name.resource_id, name.region, name.account_id),
        ).fetchone()
    return row is not None


def owned_resource(emu: Emulator, call: Call, text: str) -> ResourceName:
    """The caller's own resource named by ``text``, or the error for another account's or a missing one."""
    name = parse_resource(emu, text)
    if name.account_id != call.account.account_id:
        raise ApiError(
            "AuthFailure.UnauthorizedOperation",
            f"The resource {text!r} belongs to account {name.account_id}, not to the caller.",
        )
    if not _exists(emu.store.conn, name):
        raise ApiError("ResourceNotFound.RecordNotFound", f"The resource {text!r} does not exist.")
    return name


def read_tags(conn: sqlite3.Connection, name: ResourceName) -> dict[str, str]:
    if name.kind == "image":
        rows = conn.execute(
            "SELECT key, value FROM image_tags WHERE image_id = ? AND region = ? ORDER BY key",
            (name.resource_id, name.region),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT key, value FROM instance_tags WHERE instance_id = ? ORDER BY key", (name.resource_id,)
        ).fetchall()
    return {str(row["key"]): str(row["value"]) for row in rows}


def write_tags(conn: sqlite3.Connection, name: ResourceName, replace: dict[str, str], delete: Sequence[str]) -> None:
    """Set ``replace`` and remove ``delete`` on the resource, keeping the CVM limit of tags per resource."""
    current = read_tags(conn, name)
    after = {k: v for k, v in current.items() if k not in delete} | replace
    if len(after) > MAX_TAGS:
        raise ApiError(
            "LimitExceeded.ResourceAttachedTags", f"A resource can have at most {MAX_TAGS} tags ({name} would have "
            f"{len(after)})."
        )  # fmt: skip
    if name.kind == "image":
        conn.executemany(
            "DELETE FROM image_tags WHERE image_id = ? AND region = ? AND key = ?",
            [(name.resource_id, name.region, key) for key in delete],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO image_tags (image_id, region, key, value) VALUES (?, ?, ?, ?)",
            [(name.resource_id, name.region, key, value) for key, value in replace.items()],
        )
    else:
        conn.executemany(
            "DELETE FROM instance_tags WHERE instance_id = ? AND key = ?",
            [(name.resource_id, key) for key in delete],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO instance_tags (instance_id, key, value) VALUES (?, ?, ?)",
            [(name.resource_id, key, value) for key, value in replace.items()],
        )


def _owned_resources(conn: sqlite3.Connection, account_id: str) -> list[ResourceName]:
    """Every tagged image and instance of the account (the Tag service knows tagged resources only)."""
    images = conn.execute(
        "SELECT DISTINCT i.image_id, i.region FROM images i JOIN image_tags t "
        "ON t.image_id = i.image_id AND t.region = i.region "
        "WHERE i.owner = ? AND i.image_type = 'PRIVATE_IMAGE'",
        (account_id,),
    ).fetchall()
    instances = conn.execute(
        "SELECT DISTINCT i.instance_id, i.region FROM instances i "
        "JOIN instance_tags t ON t.instance_id = i.instance_id WHERE i.owner = ? AND i.state != 'TERMINATED'",
        (account_id,),
    ).fetchall()
    return [ResourceName(r["region"], account_id, "image", r["image_id"]) for r in images] + [
        ResourceName(r["region"], account_id, "instance", r["instance_id"]) for r in instances
    ]


def _tags_to_api(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in sorted(tags.items())]


# ---------------------------------------------------------------- actions


def modify_resource_tags(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    replace_param, delete_param = params.get("ReplaceTags"), params.get("DeleteTags")
    if replace_param is None and delete_param is None:
        raise ApiError("MissingParameter", "One of `ReplaceTags` and `DeleteTags` is required.")
    replace = _tag_pairs(replace_param, "ReplaceTags") if replace_param is not None else {}
    delete = _tag_keys((t["TagKey"] for t in delete_param), "DeleteTags") if delete_param is not None else []
    both = sorted(set(replace) & set(delete))
    if both:
        raise ApiError(
            "InvalidParameterValue.DeleteTagsParamError", f"`DeleteTags` must not name keys of `ReplaceTags`: {both}."
        )
    name = owned_resource(emu, call, params["Resource"])
    write_tags(emu.store.conn, name, replace, delete)
    return {}


def _apply_to_each(
    emu: Emulator, call: Call, resources: Sequence[str], replace: dict[str, str], delete: Sequence[str]
) -> dict[str, Any]:
    """Tag or untag each resource; those that fail are listed in FailedResources, the rest are changed."""
    failed: list[dict[str, str]] = []
    for name in _resource_list(emu, resources):
        try:
            owned = owned_resource(emu, call, str(name))
            write_tags(emu.store.conn, owned, replace, delete)
        except ApiError as error:
            failed.append({"Resource": str(name), "Code": error.code, "Message": error.message})
    return {"FailedResources": failed}


def tag_resources(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    replace = _tag_pairs(params["Tags"], "Tags")
    return _apply_to_each(emu, call, params["ResourceList"], replace, [])


def untag_resources(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    delete = _tag_keys(params["TagKeys"], "TagKeys")
    return _apply_to_each(emu, call, params["ResourceList"], {}, delete)


def _matches(tags: dict[str, str], filters: Sequence[dict[str, Any]]) -> bool:
    # Filters are ANDed; the values of one filter are ORed; a filter without values needs the key only.
    for flt in filters:
        key, values = flt["TagKey"], flt.get("TagValue") or []
        if key not in tags or (values and tags[key] not in values):
            return False
    return True


def get_resources(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    filters: list[dict[str, Any]] = params.get("TagFilters") or []
    if len(filters) > MAX_TAG_FILTERS:
        raise ApiError("InvalidParameterValue.TagFilters", f"At most {MAX_TAG_FILTERS} `TagFilters` are allowed.")
    for flt in filters:
        _check_key(flt["TagKey"])
        if len(flt.get("TagValue") or []) > MAX_TAG_FILTER_VALUES:
            raise ApiError(
                "InvalidParameterValue.TagFiltersLengthExceeded",
                f"A tag filter takes at most {MAX_TAG_FILTER_VALUES} values.",
            )
    max_results = params.get("MaxResults")
    limit = DEFAULT_RESULTS if max_results is None else max_results
    if not 1 <= limit <= MAX_RESULTS:
        raise ApiError("InvalidParameter", f"`MaxResults` must be between 1 and {MAX_RESULTS}.")
    token = params.get("PaginationToken") or ""
    if token and not token.isdigit():
        raise ApiError("InvalidParameter.PaginationTokenInvalid", f"The pagination token {token!r} is not valid.")
    offset = int(token or 0)
    conn = emu.store.conn
    resource_list = params.get("ResourceList")
    if resource_list:
        # Named resources are all returned (no paging); others' and missing ones are simply not found.
        names = [
            name
            for name in _resource_list(emu, resource_list)
            if name.account_id == call.account.account_id and _exists(conn, name)
        ]
        offset, limit = 0, len(names) or 1
    else:
        names = _owned_resources(conn, call.account.account_id)
    mappings = [
        {"Resource": str(name), "Tags": _tags_to_api(tags)}
        for name in sorted(names, key=str)
        if _matches(tags := read_tags(conn, name), filters)
    ]
    page = mappings[offset : offset + limit]
    next_offset = offset + len(page)
    return {
        "ResourceTagMappingList": page,
        "PaginationToken": str(next_offset) if next_offset < len(mappings) else "",
    }


ACTIONS = {
    "ModifyResourceTags": modify_resource_tags,
    "TagResources": tag_resources,
    "UnTagResources": untag_resources,
    "GetResources": get_resources,
}
READ_ONLY = frozenset({"GetResources"})
