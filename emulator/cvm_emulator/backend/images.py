"""Images: visibility to a caller (own, public, marketplace, shared with it) and the rules over them."""

from __future__ import annotations

import sqlite3

from ..context import Call, Emulator
from ..errors import ApiError
from ..ids import IMAGE_ID_RE

# The caller-relative type: another account's custom image is SHARED_IMAGE to the caller.
TYPE_SQL = "CASE WHEN i.image_type = 'PRIVATE_IMAGE' AND i.owner != ? THEN 'SHARED_IMAGE' ELSE i.image_type END"
# The same with the caller as ?1 and the region as ?2, for queries that bind further parameters by position.
TYPE_SQL_NUMBERED = (
    "CASE WHEN i.image_type = 'PRIVATE_IMAGE' AND i.owner != ?1 THEN 'SHARED_IMAGE' ELSE i.image_type END"
)
VISIBLE_SQL_NUMBERED = (
    "i.region = ?2 AND (i.image_type != 'PRIVATE_IMAGE' OR i.owner = ?1 OR EXISTS ("
    "SELECT 1 FROM image_shares s WHERE s.image_id = i.image_id AND s.region = i.region AND s.account_id = ?1))"
)
VISIBLE_SQL = (
    "i.region = ? AND (i.image_type != 'PRIVATE_IMAGE' OR i.owner = ? OR EXISTS ("
    "SELECT 1 FROM image_shares s WHERE s.image_id = i.image_id AND s.region = i.region AND s.account_id = ?))"
)


def check_image_id(image_id: str) -> None:
    if not IMAGE_ID_RE.match(image_id):
        raise ApiError("InvalidImageId.Malformed", f"The image id `{image_id}` is malformed.")


class ImageBackend:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    @property
    def conn(self) -> sqlite3.Connection:
        return self.emu.store.conn

    def visible(self, call: Call, image_id: str, region: str | None = None) -> sqlite3.Row | None:
        """The image as the caller sees it in ``region`` (default: the request region), or None."""
        caller = call.account.account_id
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT i.*, {TYPE_SQL} AS visible_type FROM images i WHERE i.image_id = ? AND {VISIBLE_SQL}",
            (caller, image_id, region or call.region, caller, caller),
        ).fetchone()
        return row

    def usable(self, call: Call, image_id: str) -> sqlite3.Row:
        """An image the caller may launch or reinstall from: any visible type, NORMAL state."""
        check_image_id(image_id)
        row = self.visible(call, image_id)
        if row is None:
            raise ApiError("InvalidImageId.NotFound", f"The image `{image_id}` does not exist in {call.region}.")
        if row["state"] != "NORMAL":
            raise ApiError(
                "InvalidParameterValue.InvalidImageState", f"The image `{image_id}` is {row['state']}, not NORMAL."
            )
        return row
