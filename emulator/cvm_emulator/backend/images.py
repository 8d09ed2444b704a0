"""Images: visibility to a caller (own, public, marketplace, shared with it), the rules of making,
importing, copying, sharing, changing and deleting them, and what CreateImage does to its instance.

The action module (``cvm_emulator.images``) parses each request into the values here and renders the
rows it gets back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import PRIVATE_IMAGE, PUBLIC_IMAGE, SHARED_IMAGE
from ..context import Call
from ..errors import ApiError, invalid_state_code
from ..filters import MAX_IDS, Filter, build_where, exact, fuzzy
from ..ids import IMAGE_ID_RE, INSTANCE_ID_RE
from ..store import random_suffix
from .services import Services

BUSY_STATES = ("CREATING", "SYNCING", "IMPORTING")

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


def snapshot(usage: str, size: int) -> dict[str, Any]:
    return {"SnapshotId": f"snap-{random_suffix()}", "DiskUsage": usage, "DiskSize": size}


@dataclass
class NewImage:
    """A row for ``images``: what CreateImage, ImportImage and SyncImages make."""

    region: str
    name: str
    description: str
    os_name: str
    platform: str
    architecture: str
    size_gb: int
    source: str
    state: str
    next_state: str | None
    duration: float
    family: str = ""
    license_type: str = "TencentCloud"
    boot_mode: str = "Legacy BIOS"
    cloudinit: bool = True
    encrypted: bool = False
    snapshots: list[dict[str, Any]] | None = None
    import_url: str | None = None
    import_force: bool = False
    source_image_id: str | None = None
    tags: Sequence[tuple[str, str]] = ()


@dataclass
class ImportSpec:
    name: str
    description: str
    family: str
    os_name: str
    platform: str
    architecture: str
    license_type: str
    boot_mode: str
    url: str
    force: bool
    tags: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False


class ImageBackend:
    def __init__(self, emu: Services) -> None:
        self.emu = emu

    @property
    def conn(self) -> sqlite3.Connection:
        return self.emu.store.conn

    # ------------------------------------------------------------ lookups

    def visible(self, call: Call, image_id: str, region: str | None = None) -> sqlite3.Row | None:
        """The image as the caller sees it in ``region`` (default: the request region), or None."""
        caller = call.account.account_id
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT i.*, {TYPE_SQL} AS visible_type FROM images i WHERE i.image_id = ? AND {VISIBLE_SQL}",
            (caller, image_id, region or call.region, caller, caller),
        ).fetchone()
        return row

    def found(self, call: Call, image_id: str) -> sqlite3.Row:
        check_image_id(image_id)
        row = self.visible(call, image_id)
        if row is None:
            raise ApiError("InvalidImageId.NotFound", f"The image `{image_id}` does not exist in {call.region}.")
        return row

    def usable(self, call: Call, image_id: str) -> sqlite3.Row:
        """An image the caller may launch or reinstall from: any visible type, NORMAL state."""
        row = self.found(call, image_id)
        if row["state"] != "NORMAL":
            raise ApiError(
                "InvalidParameterValue.InvalidImageState", f"The image `{image_id}` is {row['state']}, not NORMAL."
            )
        return row

    def own_custom(self, call: Call, image_id: str, shared_code: str) -> sqlite3.Row:
        """The caller's own custom image, or the error for public, marketplace or received shared images."""
        row = self.found(call, image_id)
        if row["visible_type"] == SHARED_IMAGE:
            raise ApiError(shared_code, f"The image `{image_id}` was shared with you by another account.")
        if row["visible_type"] != PRIVATE_IMAGE:
            raise ApiError(
                "InvalidParameterValue.InvalidImageId",
                f"The image `{image_id}` is a {row['visible_type']} and does not allow this operation.",
            )
        return row

    def tags_for(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, str]]]:
        result: dict[tuple[str, str], list[dict[str, str]]] = {}
        if not keys:
            return result
        ids = sorted({k[0] for k in keys})
        rows = self.conn.execute(
            f"SELECT image_id, region, key, value FROM image_tags WHERE image_id IN ({', '.join('?' * len(ids))}) "
            "ORDER BY key",
            ids,
        ).fetchall()
        for row in rows:
            result.setdefault((row["image_id"], row["region"]), []).append({"Key": row["key"], "Value": row["value"]})
        return result

    def describe(
        self,
        call: Call,
        image_ids: Sequence[str] | None,
        filters: Sequence[Filter],
        architectures: Sequence[str] | None,
        offset: int,
        limit: int,
    ) -> tuple[int, list[sqlite3.Row]]:
        caller = call.account.account_id
        clauses: list[str] = []
        args: list[Any] = []
        if image_ids:
            if len(image_ids) > MAX_IDS:
                raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `ImageIds` are allowed.")
            for image_id in image_ids:
                check_image_id(image_id)
            clauses.append(f"i.image_id IN ({', '.join('?' * len(image_ids))})")
            args.extend(image_ids)
        for flt in filters:
            if flt.name == "image-id":
                for image_id in flt.values:
                    check_image_id(image_id)
        rules = {
            "image-id": exact("i.image_id"),
            # Values outside PUBLIC/PRIVATE/SHARED_IMAGE (such as the retired MARKET_IMAGE) match nothing.
            "image-type": exact(f"({TYPE_SQL_NUMBERED})"),
            "image-name": fuzzy("i.image_name"),
            "platform": fuzzy("i.platform"),
        }
        filter_clauses, filter_args = build_where(
            filters, rules, "image_tags", "t.image_id = i.image_id AND t.region = i.region"
        )
        if architectures is not None:
            filter_clauses.append(f"i.architecture IN ({', '.join('?' * len(architectures))})")
            filter_args.extend(architectures)
        # ?1 is the caller in every caller-relative expression; the rest bind in order.
        where = " AND ".join([VISIBLE_SQL_NUMBERED, *clauses, *filter_clauses])
        all_args = [caller, call.region, *args, *filter_args]
        # Listing a region: count through the visibility index, page through the ordered one (the planner
        # picks worse plans for both); id lookups go through the primary key.
        count_index, page_index = ("", "") if image_ids else ("INDEXED BY images_visible", "INDEXED BY images_listing")

        def query() -> tuple[int, list[sqlite3.Row]]:
            total = self.conn.execute(
                f"SELECT COUNT(*) FROM images i {count_index} WHERE {where}", all_args
            ).fetchone()[0]
            rows = self.conn.execute(
                f"SELECT i.*, {TYPE_SQL_NUMBERED} AS visible_type FROM images i {page_index} WHERE {where} "
                "ORDER BY i.region, i.created_at DESC, i.image_id LIMIT ? OFFSET ?",
                [*all_args, limit, offset],
            ).fetchall()
            return int(total), rows

        return self.emu.store.cached(("DescribeImages", where, tuple(all_args), limit, offset), query)

    def latest_in_family(self, call: Call, family: str) -> sqlite3.Row | None:
        caller = call.account.account_id
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT i.*, {TYPE_SQL} AS visible_type FROM images i WHERE {VISIBLE_SQL} AND i.family = ? "
            "AND i.state = 'NORMAL' AND i.deprecated = 0 ORDER BY i.created_at DESC, i.image_id LIMIT 1",
            (caller, call.region, caller, caller, family),
        ).fetchone()
        return row

    def shares(self, call: Call, image_id: str) -> list[sqlite3.Row]:
        row = self.found(call, image_id)
        if row["visible_type"] != PRIVATE_IMAGE:
            raise ApiError(
                "UnauthorizedOperation.ImageNotBelongToAccount",
                f"The image `{image_id}` does not belong to your account.",
            )
        return self.conn.execute(
            "SELECT account_id, created_at FROM image_shares WHERE image_id = ? AND region = ? "
            "ORDER BY created_at, account_id",
            (image_id, call.region),
        ).fetchall()

    # ------------------------------------------------------------ new images

    def _name_taken(self, owner: str, region: str, name: str, except_id: str = "") -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM images WHERE owner = ? AND region = ? AND image_type = 'PRIVATE_IMAGE' "
            "AND image_name = ? AND image_id != ? LIMIT 1",
            (owner, region, name, except_id),
        ).fetchone()
        return row is not None

    def check_new(self, owner: str, region: str, name: str) -> None:
        if self._name_taken(owner, region, name):
            raise ApiError("InvalidImageName.Duplicate", f"An image named {name!r} already exists in {region}.")
        count = self.conn.execute(
            "SELECT COUNT(*) FROM images WHERE owner = ? AND region = ? AND image_type = 'PRIVATE_IMAGE'",
            (owner, region),
        ).fetchone()[0]
        quota = self.emu.config.image_quota
        if count >= quota:
            raise ApiError("ImageQuotaLimitExceeded", f"The custom image quota of {quota} in {region} is used up.")

    def insert(self, call: Call, new: NewImage) -> tuple[str, float]:
        """Insert the image; its id and when it reaches its next state."""
        image_id = self.emu.store.new_id("img", "images", "image_id")
        due_at = call.now + new.duration
        self.conn.execute(
            "INSERT INTO images (image_id, region, image_type, owner, image_name, description, os_name, platform, "
            "architecture, size_gb, image_source, state, next_state, started_at, due_at, family, license_type, "
            "boot_mode, cloudinit, encrypted, snapshots, created_at, import_url, import_force, source_image_id) "
            "VALUES (?, ?, 'PRIVATE_IMAGE', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_id,
                new.region,
                call.account.account_id,
                new.name,
                new.description,
                new.os_name,
                new.platform,
                new.architecture,
                new.size_gb,
                new.source,
                new.state,
                new.next_state,
                call.now,
                due_at,
                new.family,
                new.license_type,
                new.boot_mode,
                int(new.cloudinit),
                int(new.encrypted),
                json.dumps(new.snapshots if new.snapshots is not None else [snapshot("SYSTEM_DISK", new.size_gb)]),
                call.now,
                new.import_url,
                int(new.import_force),
                new.source_image_id,
            ),
        )
        self.conn.executemany(
            "INSERT INTO image_tags (image_id, region, key, value) VALUES (?, ?, ?, ?)",
            [(image_id, new.region, k, v) for k, v in new.tags],
        )
        if new.next_state is not None:
            self.emu.store.note_due(due_at)
        return image_id, due_at

    # ------------------------------------------------------------ CreateImage

    def _source_instance(self, call: Call, instance_id: str) -> sqlite3.Row:
        if not INSTANCE_ID_RE.match(instance_id):
            raise ApiError("InvalidInstanceId.Malformed", f"The instance id `{instance_id}` is malformed.")
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM instances WHERE instance_id = ? AND owner = ? AND region = ? AND state != 'TERMINATED'",
            (instance_id, call.account.account_id, call.region),
        ).fetchone()
        if row is None:
            raise ApiError("InvalidInstanceId.NotFound", f"The instance `{instance_id}` does not exist.")
        return row

    def create(
        self,
        call: Call,
        instance_id: str,
        name: str,
        description: str,
        family: str,
        data_disk_ids: Sequence[str],
        force_poweroff: bool,
        tags: list[tuple[str, str]],
        dry_run: bool,
    ) -> str | None:
        """An image of the instance's system disk (and the chosen data disks). The instance reports
        CreateImage as its operation until the image is made; with ``force_poweroff`` a running
        instance is shut down first and stays STOPPED."""
        instance = self._source_instance(call, instance_id)
        if instance["state"] not in ("RUNNING", "STOPPED"):
            raise ApiError(
                invalid_state_code(instance["state"]),
                f"The instance `{instance_id}` is {instance['state']}; it must be RUNNING or STOPPED.",
            )
        if instance["latest_operation_state"] == "OPERATING":
            raise ApiError(
                "OperationDenied.InstanceOperationInProgress",
                f"The instance `{instance_id}` has an operation in progress.",
            )
        details = json.loads(instance["details"])
        if instance["state"] == "STOPPED" and details.get("StopChargingMode") == "STOP_CHARGING":
            raise ApiError(
                "UnsupportedOperation.StoppedModeStopCharging",
                f"The instance `{instance_id}` is in no-charge shutdown; start it or stop it keeping charging.",
            )
        system_disk = details["SystemDisk"]
        data_disks = {d["DiskId"]: d for d in details.get("DataDisks", [])}
        snapshots = [snapshot("SYSTEM_DISK", int(system_disk["DiskSize"]))]
        for disk_id in data_disk_ids:
            if disk_id == system_disk["DiskId"]:
                raise ApiError(
                    "InvalidParameter.DataDiskIdContainsRootDisk",
                    f"`DataDiskIds` contains the system disk `{disk_id}`.",
                )
            if disk_id not in data_disks:
                raise ApiError(
                    "InvalidParameter.DataDiskNotBelongSpecifiedInstance",
                    f"The disk `{disk_id}` is not a data disk of `{instance_id}`.",
                )
            snapshots.append(snapshot("DATA_DISK", int(data_disks[disk_id]["DiskSize"])))
        self.check_new(call.account.account_id, call.region, name)
        if dry_run:
            return None
        failed = self.emu.faults.failed_operations("CreateImage") > 0
        image_id, due_at = self.insert(
            call,
            NewImage(
                region=call.region,
                name=name,
                description=description,
                os_name=instance["os_name"],
                platform=instance["platform"],
                architecture=details.get("Architecture", "x86_64"),
                size_gb=int(system_disk["DiskSize"]),
                source="CREATE_IMAGE",
                state="CREATING",
                next_state="CREATEFAILED" if failed else "NORMAL",
                duration=self.emu.clock.duration("image.create"),
                family=family,
                cloudinit=bool(details.get("Cloudinit", True)),
                snapshots=snapshots,
                tags=tags,
            ),
        )
        stopping = force_poweroff and instance["state"] == "RUNNING"
        if stopping:
            details["StopChargingMode"] = "KEEP_CHARGING"
        # The instance's operation ends when the image does (advance() moves both at due_at).
        self.conn.execute(
            "UPDATE instances SET state = ?, next_state = ?, started_at = ?, due_at = ?, "
            "latest_operation = 'CreateImage', latest_operation_state = 'OPERATING', latest_request_id = ?, "
            "next_operation_state = ?, details = ? WHERE instance_id = ?",
            (
                "STOPPING" if stopping else instance["state"],
                "STOPPED" if stopping else instance["state"],
                call.now,
                due_at,
                call.request_id,
                "FAILED" if failed else None,
                json.dumps(details),
                instance_id,
            ),
        )
        self.emu.store.note_due(due_at)
        return image_id

    # ------------------------------------------------------------ ImportImage

    def import_(self, call: Call, spec: ImportSpec) -> str | None:
        """A custom image from a disk file; the fetch runs after the call commits, unless a fault has
        already decided that the import fails."""
        self.emu.objects.check_import_url(spec.url, call.region)
        self.check_new(call.account.account_id, call.region, spec.name)
        if spec.dry_run:
            return None
        failed = self.emu.faults.failed_operations("ImportImage") > 0
        image_id, _ = self.insert(
            call,
            NewImage(
                region=call.region,
                name=spec.name,
                description=spec.description,
                os_name=spec.os_name,
                platform=spec.platform,
                architecture=spec.architecture,
                size_gb=0,
                source="EXTERNAL_IMPORT",
                state="IMPORTING",
                next_state="IMPORTFAILED" if failed else None,
                duration=self.emu.clock.duration("image.import"),
                family=spec.family,
                license_type=spec.license_type,
                boot_mode=spec.boot_mode,
                cloudinit=False,
                import_url=spec.url,
                import_force=spec.force,
                snapshots=[],
                tags=spec.tags,
            ),
        )
        if failed:
            self.conn.execute(
                "UPDATE images SET import_detail = 'the disk file could not be read' WHERE image_id = ?", (image_id,)
            )
        else:
            region = call.region
            call.after_commit.append(lambda: self.emu.start_import(image_id, region))
        return image_id

    def finish_import(self, image_id: str, region: str, disk_format: str | None, size_gib: int, detail: str) -> None:
        """Record what the fetch found: NORMAL with a system disk snapshot, or IMPORTFAILED. The image
        reaches that state at its due time (an import never ends sooner than the clock's duration)."""
        now = self.emu.clock.now()
        outcome = "IMPORTFAILED" if disk_format is None else "NORMAL"
        snapshots = json.dumps([snapshot("SYSTEM_DISK", size_gib)] if disk_format is not None else [])
        with self.emu.store.transaction() as conn:
            conn.execute(
                "UPDATE images SET next_state = ?, size_gb = ?, import_detail = ?, snapshots = ?, "
                "due_at = MAX(COALESCE(due_at, 0), ?) WHERE image_id = ? AND region = ? AND state = 'IMPORTING'",
                (outcome, size_gib if disk_format else 0, detail, snapshots, now, image_id, region),
            )
            due = conn.execute(
                "SELECT due_at FROM images WHERE image_id = ? AND region = ?", (image_id, region)
            ).fetchone()
        if due is not None and due["due_at"] is not None:
            self.emu.store.note_due(float(due["due_at"]))

    def pending_imports(self) -> list[tuple[str, str, str, bool]]:
        """Imports whose fetch has not finished: (image id, region, URL, force)."""
        rows = self.conn.execute(
            "SELECT image_id, region, import_url, import_force FROM images "
            "WHERE state = 'IMPORTING' AND next_state IS NULL"
        ).fetchall()
        return [(r["image_id"], r["region"], r["import_url"], bool(r["import_force"])) for r in rows]

    def import_source(self, image_id: str, region: str) -> tuple[str, bool] | None:
        row = self.conn.execute(
            "SELECT import_url, import_force FROM images WHERE image_id = ? AND region = ?", (image_id, region)
        ).fetchone()
        return None if row is None else (str(row["import_url"]), bool(row["import_force"]))

    # ------------------------------------------------------------ SyncImages

    def sync(
        self,
        call: Call,
        image_id: str,
        destinations: Sequence[str],
        name: str | None,
        encrypt: bool,
        kms_key_id: str | None,
        dry_run: bool,
    ) -> list[dict[str, str]]:
        source = self.found(call, image_id)
        if source["visible_type"] == PUBLIC_IMAGE:  # marketplace images too
            raise ApiError(
                "InvalidParameterValue.InvalidImageId",
                f"The image `{image_id}` is a {source['visible_type']}; only custom and shared images can be copied.",
            )
        if source["state"] != "NORMAL":
            raise ApiError("InvalidImageId.IncorrectState", f"The image `{image_id}` is {source['state']}, not NORMAL.")
        if any(s["DiskUsage"] == "DATA_DISK" for s in json.loads(source["snapshots"])):
            raise ApiError("InvalidParameter.InstanceImageNotSupport", "Whole-machine images cannot be copied.")
        for region in destinations:
            if region not in self.emu.catalogue.regions:
                raise ApiError("InvalidRegion.NotFound", f"The region `{region}` does not exist.")
        if kms_key_id and not encrypt:
            raise ApiError("InvalidParameter.InvalidKmsKeyId", "`KmsKeyId` is used only with `Encrypt`.")
        shared = source["visible_type"] == SHARED_IMAGE
        if shared or encrypt:
            wrong = [r for r in destinations if r != call.region]
            if wrong:
                what = "A shared image" if shared else "An encrypted copy"
                raise ApiError(
                    "InvalidParameterValue.InvalidRegion",
                    f"{what} can only be copied into its own region {call.region}, not {wrong[0]}.",
                )
        else:
            if call.region in destinations:
                raise ApiError(
                    "InvalidParameterValue.InvalidRegion",
                    f"A custom image cannot be copied into its own region {call.region} unless encrypted.",
                )
            if source["encrypted"]:
                raise ApiError(
                    "UnsupportedOperation.SyncEncryptImageNotSupport",
                    "Encrypted images cannot be copied to other regions.",
                )
        copy_name = name or str(source["image_name"])
        for region in destinations:
            self.check_new(call.account.account_id, region, copy_name)
        if dry_run:
            return []
        created = []
        for region in destinations:
            failed = self.emu.faults.failed_operations("SyncImages") > 0
            new_id, _ = self.insert(
                call,
                NewImage(
                    region=region,
                    name=copy_name,
                    description=source["description"],
                    os_name=source["os_name"],
                    platform=source["platform"],
                    architecture=source["architecture"],
                    size_gb=source["size_gb"],
                    source=source["image_source"],
                    state="SYNCING",
                    next_state="CREATEFAILED" if failed else "NORMAL",
                    duration=self.emu.clock.duration("image.sync"),
                    family=source["family"],
                    license_type=source["license_type"],
                    boot_mode=source["boot_mode"],
                    cloudinit=bool(source["cloudinit"]),
                    encrypted=encrypt or bool(source["encrypted"]),
                    snapshots=[snapshot(s["DiskUsage"], s["DiskSize"]) for s in json.loads(source["snapshots"])],
                    source_image_id=image_id,
                ),
            )
            created.append({"ImageId": new_id, "Region": region})
        return created

    # ------------------------------------------------------------ sharing, changes, deletion

    def share(self, call: Call, image_id: str, accounts: Sequence[str], permission: str) -> None:
        row = self.own_custom(call, image_id, "UnauthorizedOperation.ImageNotBelongToAccount")
        existing = {
            r[0]
            for r in self.conn.execute(
                "SELECT account_id FROM image_shares WHERE image_id = ? AND region = ?", (image_id, call.region)
            )
        }
        if permission == "CANCEL":
            self.conn.executemany(
                "DELETE FROM image_shares WHERE image_id = ? AND region = ? AND account_id = ?",
                [(image_id, call.region, a) for a in accounts],
            )
            return
        if row["state"] != "NORMAL":
            raise ApiError(
                "InvalidParameterValue.InvalidImageState",
                f"The image `{image_id}` is {row['state']}; only NORMAL images can be shared.",
            )
        if row["encrypted"]:
            raise ApiError("UnsupportedOperation.EncryptedImagesNotSupported", "Encrypted images cannot be shared.")
        if row["license_type"] == "BYOL":
            raise ApiError("FailedOperation.BYOLImageShareFailed", "BYOL images cannot be shared.")
        if any(s["DiskUsage"] == "DATA_DISK" for s in json.loads(row["snapshots"])):
            raise ApiError("InvalidParameter.InstanceImageNotSupport", "Whole-machine images cannot be shared.")
        for account_id in accounts:
            if account_id == call.account.account_id:
                raise ApiError("FailedOperation.AccountIsYourSelf", "An image cannot be shared with its own account.")
            if account_id not in self.emu.accounts_by_id:
                raise ApiError("InvalidAccountId.NotFound", f"The account `{account_id}` does not exist.")
            if account_id in existing:
                raise ApiError(
                    "FailedOperation.AccountAlreadyExists",
                    f"The image `{image_id}` is already shared with `{account_id}`.",
                )
        limit = self.emu.config.share_limit
        if len(existing) + len(accounts) > limit:
            raise ApiError("OverQuota", f"An image can be shared with at most {limit} accounts.")
        self.conn.executemany(
            "INSERT INTO image_shares (image_id, region, account_id, created_at) VALUES (?, ?, ?, ?)",
            [(image_id, call.region, a, call.now) for a in accounts],
        )

    def delete(self, call: Call, image_ids: Sequence[str], dry_run: bool) -> None:
        if len(image_ids) > MAX_IDS:
            raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `ImageIds` are allowed.")
        for image_id in image_ids:
            row = self.own_custom(call, image_id, "InvalidParameterValue.InvalidImageIdIsShared")
            if row["state"] in BUSY_STATES:
                raise ApiError(
                    "InvalidImageId.IncorrectState",
                    f"The image `{image_id}` is {row['state']} and cannot be deleted yet.",
                )
            shared = self.conn.execute(
                "SELECT 1 FROM image_shares WHERE image_id = ? AND region = ? LIMIT 1", (image_id, call.region)
            ).fetchone()
            if shared is not None:
                raise ApiError(
                    "InvalidImageId.InShared",
                    f"The image `{image_id}` is shared; cancel all its shares before deleting it.",
                )
        if dry_run:
            return
        for image_id in image_ids:
            self.conn.execute("DELETE FROM images WHERE image_id = ? AND region = ?", (image_id, call.region))
            self.conn.execute("DELETE FROM image_tags WHERE image_id = ? AND region = ?", (image_id, call.region))

    def modify(self, call: Call, image_id: str, updates: dict[str, Any]) -> None:
        """``updates`` maps columns (image_name, description, family, deprecated) to new values."""
        row = self.own_custom(call, image_id, "UnsupportedOperation.SharedImageModifyUnsupported")
        if row["state"] in BUSY_STATES:
            raise ApiError("InvalidImageId.IncorrectState", f"The image `{image_id}` is {row['state']}.")
        name = updates.get("image_name")
        if name is not None and self._name_taken(call.account.account_id, call.region, name, except_id=image_id):
            raise ApiError("InvalidImageName.Duplicate", f"An image named {name!r} already exists.")
        if updates:
            assignments = ", ".join(f"{column} = ?" for column in updates)
            self.conn.execute(
                f"UPDATE images SET {assignments} WHERE image_id = ? AND region = ?",
                [*updates.values(), image_id, call.region],
            )
