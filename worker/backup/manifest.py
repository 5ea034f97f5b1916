"""The manifest: a small JSON object stored next to a backup's data, written last. Its presence is what makes a
backup published; a restore reads it first and trusts nothing else about the data object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from worker.errors import PermanentError

FORMAT = "dbops-backup/v1"
NAME = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    engine: str  # postgres | mysql | mariadb: the server's flavor
    server_version: str
    database: str
    tool: str  # e.g. pg_dump
    tool_version: str
    dump_format: str  # custom (pg_dump -Fc) | sql (mariadb-dump)
    object: str  # the data object's name, relative to the backup's directory
    dump_bytes: int  # what the dump tool wrote
    stored_bytes: int  # what was stored (compressed, encrypted)
    sha256: str  # of the stored bytes
    compression: str
    compression_level: int
    encryption: str | None  # aes-256-gcm, or None
    evidence: str  # how the dump was known to be complete
    started_at: str
    finished_at: str
    # `<namespace>/<name>` of the DatabaseBackupSchedule whose run published it (None: a DatabaseBackup's, or made
    # before retention existed): retention deletes only its own schedule's backups.
    schedule: str | None = None

    def to_json(self) -> bytes:
        data = {"format": FORMAT, **asdict(self)}
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    def facts(self, uri: str) -> dict[str, Any]:
        """What the result's `observed` says about a published backup (the future status.backup)."""
        return {
            "uri": uri,
            "database": self.database,
            "serverVersion": self.server_version,
            "tool": f"{self.tool} {self.tool_version}",
            "sizeBytes": self.dump_bytes,
            "storedBytes": self.stored_bytes,
            "sha256": self.sha256,
            "compression": self.compression,
            "encryption": self.encryption or "none",
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


def parse(raw: bytes, where: str) -> Manifest:
    try:
        data = json.loads(raw)
        if data.pop("format") != FORMAT:
            raise ValueError("format")
        return Manifest(**data)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PermanentError("CorruptBackup", f"{where} is not a dbops backup manifest ({FORMAT})") from None
