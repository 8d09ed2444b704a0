"""Cloud tags of the resources the operator makes (images, instances): spec.tags plus the UID tag, and
nothing else except system tags, which the cloud sets itself and are never removed. Pure helpers shared
by the Image and Instance reconcilers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cvm_operator.reconcilers.base import UID_TAG, ExtraCondition

TAGS_UP_TO_DATE = "TagsUpToDate"
"""Extra condition: the cloud tags of a created resource are spec.tags plus the UID tag (put back if not)."""
# System tag keys (these words alone or before ':'), set by the cloud itself: never removed.
_SYSTEM_TAG_WORDS = frozenset({"qcloud", "tencent", "project"})


def with_uid_tag(tags: Mapping[str, str], uid: str) -> dict[str, str]:
    """The tags a resource made for the object with ``uid`` must carry."""
    return {**tags, UID_TAG: uid}


def tag_differences(desired: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Desired tags missing or different in the cloud, in words for a condition message."""
    return [
        f"{key}: cloud {actual[key]!r}, spec {value!r}" if key in actual else f"{key}: missing (spec {value!r})"
        for key, value in sorted(desired.items())
        if actual.get(key) != value
    ]


def is_system_tag(key: str) -> bool:
    return key.lower().split(":", 1)[0] in _SYSTEM_TAG_WORDS


@dataclass(frozen=True)
class TagChanges:
    """What ModifyResourceTags must set and remove to make the cloud tags exactly the desired ones."""

    replace: dict[str, str]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.replace or self.delete)


def tag_changes(desired: Mapping[str, str], actual: Mapping[str, str]) -> TagChanges:
    """Desired tags missing or different, and tags no one asked for (system tags are left alone)."""
    return TagChanges(
        replace={key: value for key, value in sorted(desired.items()) if actual.get(key) != value},
        delete=tuple(sorted(key for key in actual if key not in desired and not is_system_tag(key))),
    )


def tags_condition(desired: Mapping[str, str], actual: Mapping[str, str]) -> ExtraCondition:
    changes = tag_changes(desired, actual)
    if not changes:
        return ExtraCondition(TAGS_UP_TO_DATE, "True", "TagsMatch", "the cloud tags match spec.tags")
    differences = tag_differences(desired, actual)
    differences += [f"{key}: not in spec (cloud {actual[key]!r})" for key in changes.delete]
    return ExtraCondition(
        TAGS_UP_TO_DATE, "False", "TagsDiffer", "putting back the cloud tags: " + "; ".join(differences)
    )
