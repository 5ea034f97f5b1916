"""The worker request kinds of backups (issue 14): `DatabaseBackup` (action `backup`) and `DatabaseRestore` (action
`restore`).

They are request kinds only, for now: no claim, XRD or composition builds them yet (a later step adds the kinds and
has the function compose their Jobs). Their shapes follow the seed project's DatabaseBackup and DatabaseRestore
(`storage`, `compression`, `encryption`), with what only the worker needs resolved: the database's server-side name
instead of `databaseRef`, a mounted directory (`storage.volume.path`) instead of a PersistentVolumeClaim, and never a
secret (the object store's keys and the encryption key are files the Job mounts, named in the environment).
"""

from __future__ import annotations

from dbops_api.retention import REQUEST_RETENTION
from dbops_api.schema import (
    K8S_NAME_PATTERN,
    Rule,
    Schema,
    boolean,
    enum,
    ident,
    integer,
    obj,
    string,
)

BACKUP_KIND = "DatabaseBackup"
RESTORE_KIND = "DatabaseRestore"
BACKUP_KINDS = (BACKUP_KIND, RESTORE_KIND)
# Which kind each backup action takes.
ACTION_KIND = {"backup": BACKUP_KIND, "restore": RESTORE_KIND}

COMPRESSIONS = ("zstd", "gzip", "none")
DEFAULT_LEVEL = {"zstd": 3, "gzip": 6, "none": 0}
STORAGE_TYPES = ("s3", "volume")

S3_STORAGE: Schema = obj(
    "An S3-compatible object store. The access key and secret key are files named by DBOPS_S3_ACCESS_KEY_FILE and "
    "DBOPS_S3_SECRET_KEY_FILE, the CA bundle (optional) by DBOPS_S3_CA_FILE.",
    {
        "endpoint": string(
            "The store's URL, `https://host[:port]` (plain `http://` is refused unless `allowHttp`); absent means "
            "AWS S3 of `region`.",
            pattern=r"^https?://[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$",
            maxLength=512,
        ),
        "bucket": string(
            "Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", minLength=3, maxLength=63
        ),
        "prefix": string(
            "Key prefix the backups are stored under, without a leading or trailing `/`; no segment starts with `.` "
            "(no `..`: some stores map keys to paths).",
            pattern=r"^[A-Za-z0-9!_*'()-][A-Za-z0-9!_.*'()-]*(/[A-Za-z0-9!_*'()-][A-Za-z0-9!_.*'()-]*)*$",
            maxLength=512,
        ),
        "region": string("Region.", pattern=r"^[a-z0-9-]{1,64}$", default="us-east-1"),
        "forcePathStyle": boolean(
            "Address the bucket as the first path segment (`https://host/bucket/key`), as most S3-compatible "
            "stores need.",
            default=False,
        ),
        "allowHttp": boolean(
            "Allow a plain `http://` endpoint (the keys are still never sent, requests are signed, but the data "
            "travels unencrypted).",
            default=False,
        ),
    },
    required=("bucket",),
    rules=(
        Rule(
            "!has(self.endpoint) || !self.endpoint.startsWith('http://') || self.allowHttp",
            "an http:// endpoint needs allowHttp: true",
            lambda s: not s.get("endpoint", "").startswith("http://") or bool(s.get("allowHttp")),
            ".endpoint",
        ),
    ),
)

VOLUME_STORAGE: Schema = obj(
    "A mounted directory (the claim's PersistentVolumeClaim, mounted into the Job by the function).",
    {
        "path": string(
            "Absolute path of the directory the backups are stored under; no segment starts with `.`.",
            pattern=r"^/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*(/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*)*$",
            maxLength=1024,
        ),
    },
    required=("path",),
)

STORAGE: Schema = obj(
    "Where the backup is stored: exactly the block `type` names.",
    {
        "type": enum("`s3` or `volume`.", STORAGE_TYPES),
        "s3": S3_STORAGE,
        "volume": VOLUME_STORAGE,
    },
    required=("type",),
    rules=(
        Rule(
            "has(self.s3) == (self.type == 's3') && has(self.volume) == (self.type == 'volume')",
            "storage needs exactly the block its type names (s3 or volume)",
            lambda s: ("s3" in s) == (s["type"] == "s3") and ("volume" in s) == (s["type"] == "volume"),
        ),
    ),
)

COMPRESSION: Schema = obj(
    "How the dump is compressed before it is stored.",
    {
        "algorithm": enum("`zstd` (default), `gzip` or `none`.", COMPRESSIONS, default="zstd"),
        "level": integer(
            "Compression level: zstd 1-19 (default 3), gzip 1-9 (default 6).", minimum=1, maximum=19
        ),
    },
    rules=(
        Rule(
            "self.algorithm != 'gzip' || !has(self.level) || self.level <= 9",
            "gzip levels are 1 to 9",
            lambda c: c["algorithm"] != "gzip" or c.get("level", 1) <= 9,
            ".level",
        ),
    ),
)

ENCRYPTION: Schema = obj(
    "Authenticated encryption of the stored bytes; the 256-bit key is the file DBOPS_BACKUP_KEY_FILE names.",
    {
        "enabled": boolean("Encrypt.", default=True),
        "algorithm": enum(
            "`aes-256-gcm` (the seed's `aes-256-cbc` is refused: it is not authenticated).",
            ("aes-256-gcm",),
            default="aes-256-gcm",
        ),
    },
)

BACKUP_NAME = string(
    "Name of this backup: its objects are stored under `<prefix>/<name>/` (the function sends the claim's name).",
    pattern=K8S_NAME_PATTERN,
    minLength=1,
    maxLength=253,
)

BACKUP_SPEC: Schema = obj(
    "One logical backup of one database.",
    {
        "database": ident("The database to dump (its name in the server)."),
        "name": BACKUP_NAME,
        "storage": STORAGE,
        "compression": COMPRESSION,
        "encryption": ENCRYPTION,
        "perRun": boolean(
            "Store this run under the name of the Job that runs it (the environment's DBOPS_JOB_NAME, the Pod's "
            "`job-name` label) instead of `name`: each run of a DatabaseBackupSchedule's CronJob is a backup of "
            "its own, and a retried Pod of the same Job finds its run's manifest.",
            default=False,
        ),
        "schedule": string(
            "`<namespace>/<name>` of the DatabaseBackupSchedule this run belongs to; written into the manifest, "
            "it is what makes a backup a candidate of that schedule's retention.",
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            maxLength=317,
        ),
        "retention": REQUEST_RETENTION,
    },
    required=("database", "name", "storage"),
    rules=(
        Rule(
            "!has(self.retention) || (self.perRun && has(self.schedule))",
            "retention applies to a schedule's runs: it needs perRun: true and schedule",
            lambda s: "retention" not in s or (bool(s.get("perRun")) and "schedule" in s),
            ".retention",
        ),
    ),
)

RESTORE_SPEC: Schema = obj(
    "Restore one backup into a database.",
    {
        "database": ident("The database to restore into (its name in the server)."),
        "name": BACKUP_NAME,
        "storage": STORAGE,
        "overwrite": boolean(
            "Restore into a database that already has tables; without it such a target is refused.",
            default=False,
        ),
    },
    required=("database", "name", "storage"),
)

SPECS: dict[str, Schema] = {BACKUP_KIND: BACKUP_SPEC, RESTORE_KIND: RESTORE_SPEC}
