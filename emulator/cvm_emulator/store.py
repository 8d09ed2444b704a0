"""SQLite persistence: schema, transactions, and lazy advancement of asynchronous states."""

from __future__ import annotations

import secrets
import sqlite3
import string
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .catalogue import Catalogue

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT NOT NULL,
    region TEXT NOT NULL,
    image_type TEXT NOT NULL,          -- PUBLIC_IMAGE | PRIVATE_IMAGE (SHARED is per caller)
    owner TEXT NOT NULL,               -- '' for public and marketplace images
    creator TEXT NOT NULL DEFAULT '',  -- catalogue ImageCreator (tencent or a vendor); '' for account images
    image_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    os_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    architecture TEXT NOT NULL,
    size_gb INTEGER NOT NULL,
    image_source TEXT NOT NULL,        -- OFFICIAL | CREATE_IMAGE | EXTERNAL_IMPORT
    state TEXT NOT NULL,
    next_state TEXT,                   -- state reached at due_at (NULL while an import is still fetching)
    started_at REAL,
    due_at REAL,
    family TEXT NOT NULL DEFAULT '',
    deprecated INTEGER NOT NULL DEFAULT 0,
    license_type TEXT NOT NULL DEFAULT 'TencentCloud',
    boot_mode TEXT NOT NULL DEFAULT 'Legacy BIOS',
    cloudinit INTEGER NOT NULL DEFAULT 1,
    encrypted INTEGER NOT NULL DEFAULT 0,
    snapshots TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    import_url TEXT,
    import_force INTEGER NOT NULL DEFAULT 0,
    import_detail TEXT,
    source_image_id TEXT,
    PRIMARY KEY (image_id, region)
);
CREATE INDEX IF NOT EXISTS images_visible ON images (region, owner, image_type);
CREATE INDEX IF NOT EXISTS images_listing ON images (region, created_at DESC, image_id);
CREATE INDEX IF NOT EXISTS images_due ON images (due_at) WHERE next_state IS NOT NULL;
CREATE TABLE IF NOT EXISTS image_tags (
    image_id TEXT NOT NULL, region TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (image_id, region, key)
);
CREATE TABLE IF NOT EXISTS image_shares (
    image_id TEXT NOT NULL, region TEXT NOT NULL, account_id TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (image_id, region, account_id)
);
CREATE INDEX IF NOT EXISTS image_shares_account ON image_shares (account_id, region);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    region TEXT NOT NULL,
    zone TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    charge_type TEXT NOT NULL,
    image_id TEXT NOT NULL,
    os_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    state TEXT NOT NULL,               -- TERMINATED rows are kept but never shown
    next_state TEXT,
    started_at REAL,
    due_at REAL,
    latest_operation TEXT,
    latest_operation_state TEXT,
    latest_request_id TEXT,
    pending_image_id TEXT,
    pending_os_name TEXT,
    pending_platform TEXT,
    private_ip TEXT NOT NULL,
    public_ip TEXT,
    created_at REAL NOT NULL,
    expired_at REAL,
    disable_api_termination INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}',
    next_operation_state TEXT          -- LatestOperationState at due_at when not SUCCESS (FAILED)
);
CREATE INDEX IF NOT EXISTS instances_owner ON instances (owner, region, state);
CREATE INDEX IF NOT EXISTS instances_due ON instances (due_at) WHERE next_state IS NOT NULL;
CREATE TABLE IF NOT EXISTS instance_tags (
    instance_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (instance_id, key)
);
CREATE TABLE IF NOT EXISTS client_tokens (
    owner TEXT NOT NULL, region TEXT NOT NULL, token TEXT NOT NULL, instance_ids TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (owner, region, token)
);
-- Temporary credentials issued by STS (identity.py); expired rows are dropped a day later.
CREATE TABLE IF NOT EXISTS sts_sessions (
    secret_id TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    token TEXT NOT NULL,
    account_id TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    session_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sts_sessions_expiry ON sts_sessions (expires_at);
"""

_ID_ALPHABET = string.ascii_lowercase + string.digits
QUERY_CACHE_SIZE = 512

T = TypeVar("T")


def random_suffix(length: int = 8) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


class Store:
    """One connection used from the event loop thread only; every request is one short transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(str(path))
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(_SCHEMA)
        self._migrate()
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._next_due = 0.0
        self._in_transaction = False
        # Every committed transaction bumps the generation, which empties the read cache.
        self.generation = 0
        self._cache_generation = 0
        self._cache: dict[Hashable, object] = {}

    def _migrate(self) -> None:
        """Columns added since a database was made."""
        columns = {row["name"] for row in self.conn.execute("PRAGMA table_info(instances)")}
        if "next_operation_state" not in columns:
            self.conn.execute("ALTER TABLE instances ADD COLUMN next_operation_state TEXT")
        image_columns = {row["name"] for row in self.conn.execute("PRAGMA table_info(images)")}
        if "creator" not in image_columns:
            self.conn.execute("ALTER TABLE images ADD COLUMN creator TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: an exception inside rolls every write back."""
        if self._in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
            self.generation += 1
        finally:
            self._in_transaction = False

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A read result reused until the next write (Describe* polling repeats the same queries)."""
        if self._cache_generation != self.generation:
            self._cache.clear()
            self._cache_generation = self.generation
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        value = compute()
        if len(self._cache) >= QUERY_CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = value
        return value

    def next_counter(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        value = int(row["value"]) + 1 if row else 1
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (name, str(value)))
        return value

    def new_id(self, prefix: str, table: str, column: str) -> str:
        while True:
            candidate = f"{prefix}-{random_suffix()}"
            row = self.conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (candidate,)).fetchone()
            if row is None:
                return candidate

    def note_due(self, due_at: float) -> None:
        self._next_due = min(self._next_due, due_at) if self._next_due else due_at

    def advance(self, now: float) -> int:
        """Move every resource whose due time has passed to its next state; returns how many moved."""
        if self._next_due == 0.0 or now < self._next_due:
            return 0
        with self.transaction() as conn:
            moved = conn.execute(
                "UPDATE images SET state = next_state, next_state = NULL, due_at = NULL "
                "WHERE next_state IS NOT NULL AND due_at <= ?",
                (now,),
            ).rowcount
            moved += conn.execute(
                "UPDATE instances SET state = next_state, next_state = NULL, due_at = NULL, "
                "image_id = COALESCE(pending_image_id, image_id), os_name = COALESCE(pending_os_name, os_name), "
                "platform = COALESCE(pending_platform, platform), pending_image_id = NULL, "
                "pending_os_name = NULL, pending_platform = NULL, "
                "latest_operation_state = CASE WHEN latest_operation_state = 'OPERATING' "
                "THEN COALESCE(next_operation_state, 'SUCCESS') ELSE latest_operation_state END, "
                "next_operation_state = NULL "
                "WHERE next_state IS NOT NULL AND due_at <= ?",
                (now,),
            ).rowcount
            self.refresh_next_due()
        return moved

    def refresh_next_due(self) -> None:
        row = self.conn.execute(
            "SELECT MIN(d) AS d FROM (SELECT MIN(due_at) AS d FROM images WHERE next_state IS NOT NULL "
            "UNION ALL SELECT MIN(due_at) FROM instances WHERE next_state IS NOT NULL)"
        ).fetchone()
        self._next_due = float(row["d"]) if row and row["d"] is not None else 0.0

    def seed_catalogue(self, catalogue: Catalogue, created_at: float) -> None:
        """Public and marketplace images in every region (idempotent; user data is never touched)."""
        with self.transaction() as conn:
            for region in catalogue.regions:
                for image in catalogue.images:
                    conn.execute(
                        "INSERT OR REPLACE INTO images (image_id, region, image_type, owner, creator, image_name, "
                        "description, os_name, platform, architecture, size_gb, image_source, state, family, "
                        "cloudinit, created_at) "
                        "VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, 'OFFICIAL', 'NORMAL', ?, ?, ?)",
                        (
                            image.image_id,
                            region,
                            image.image_type,
                            image.creator,
                            image.image_name,
                            image.description,
                            image.os_name,
                            image.platform,
                            image.architecture,
                            image.size_gb,
                            image.family,
                            int(image.cloudinit),
                            created_at,
                        ),
                    )
