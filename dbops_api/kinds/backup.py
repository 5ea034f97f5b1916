"""DatabaseBackup and DatabaseRestore: one logical backup of a Database claim's database, and one restore of it.

The shapes follow the seed project's (`databaseRef`, `storage{type, s3{..., secretRef{name, keys}}, pvc{claimName,
subPath}}`, `compression`, `encryption{enabled, algorithm, secretRef}`; restore: `backupRef` or `fromPath`,
`target.databaseRef`), so its users' YAML applies where dbops does the same thing. The function turns them into the
worker's request kinds of the same names (`dbops_api.backup`): the database's server-side name, a mounted directory
for a volume, and every secret as a file the Job mounts, never in the request.
"""

from __future__ import annotations

from dbops_api import backup as request
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.retention import CLAIM_RETENTION
from dbops_api.schema import (
    K8S_NAME_PATTERN,
    SECRET_KEY_PATTERN,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    integer,
    obj,
    object_ref,
    secret_name,
    string,
)

UNSUPPORTED_STORAGE_MESSAGE = (
    "storage.type gcs and azure are not supported: dbops stores backups in S3-compatible object stores (s3) and "
    "on PersistentVolumeClaims (pvc); GCS's S3-compatible XML API works as s3 with an endpoint"
)


def _key(description: str, default: str) -> Schema:
    return string(description, pattern=SECRET_KEY_PATTERN, maxLength=253, default=default)


S3_SECRET_REF: Schema = obj(
    "The Secret (in the claim's namespace) holding the object store's keys; mounted as files into the Job, never "
    "passed in the environment or the request.",
    {
        "name": secret_name("Secret name."),
        "keys": obj(
            "Which keys of the Secret hold the access key and the secret key.",
            {
                "accessKey": _key("Key of the access key.", "AWS_ACCESS_KEY_ID"),
                "secretKey": _key("Key of the secret key.", "AWS_SECRET_ACCESS_KEY"),
            },
        ),
    },
    required=("name",),
)

SECRET_KEY_REF: Schema = obj(
    "A key of a Secret in the claim's namespace.",
    {"name": secret_name("Secret name."), "key": string("Key in the Secret.", pattern=SECRET_KEY_PATTERN)},
    required=("name", "key"),
)

_REQ_S3 = request.S3_STORAGE["properties"]

S3: Schema = obj(
    "An S3-compatible object store.",
    {
        "endpoint": _REQ_S3["endpoint"],
        "bucket": _REQ_S3["bucket"],
        "prefix": _REQ_S3["prefix"],
        "region": _REQ_S3["region"],
        "forcePathStyle": _REQ_S3["forcePathStyle"],
        "allowHttp": _REQ_S3["allowHttp"],
        "secretRef": S3_SECRET_REF,
        "caSecretRef": obj(
            "A Secret holding the PEM CA bundle the store's certificate must chain to (instead of the system's).",
            {"name": secret_name("Secret name."), "key": _key("Key of the CA bundle.", "ca.crt")},
            required=("name",),
        ),
    },
    required=("bucket", "secretRef"),
)
# The request's rule (an http:// endpoint needs allowHttp) applies to the claim as it is.
for _k in ("x-kubernetes-validations", "x-dbops-checks"):
    if _k in request.S3_STORAGE:
        S3[_k] = request.S3_STORAGE[_k]

PVC: Schema = obj(
    "A PersistentVolumeClaim in the claim's namespace, mounted into the Job.",
    {
        "claimName": string("Name of the PersistentVolumeClaim.", pattern=K8S_NAME_PATTERN, maxLength=253),
        "subPath": string(
            "Directory inside the volume the backups are stored under (relative; no segment starts with `.`).",
            pattern=r"^[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*(/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*)*$",
            maxLength=512,
        ),
    },
    required=("claimName",),
)

STORAGE: Schema = obj(
    "Where the backup is stored: exactly the block `type` names.",
    {
        "type": enum("`s3` or `pvc` (`gcs` and `azure` are refused).", ("s3", "pvc", "gcs", "azure")),
        "s3": S3,
        "pvc": PVC,
        "gcs": obj("Refused: " + UNSUPPORTED_STORAGE_MESSAGE + ".", {}),
        "azure": obj("Refused: " + UNSUPPORTED_STORAGE_MESSAGE + ".", {}),
    },
    required=("type",),
    rules=(
        Rule(
            "self.type == 's3' || self.type == 'pvc'",
            UNSUPPORTED_STORAGE_MESSAGE,
            lambda s: s["type"] in ("s3", "pvc"),
            ".type",
        ),
        Rule(
            "has(self.s3) == (self.type == 's3') && has(self.pvc) == (self.type == 'pvc')",
            "storage needs exactly the block its type names (s3 or pvc)",
            lambda s: ("s3" in s) == (s["type"] == "s3") and ("pvc" in s) == (s["type"] == "pvc"),
        ),
    ),
)

COMPRESSION: Schema = obj(
    "How the dump is compressed before it is stored.",
    {
        "enabled": boolean("Compress; false stores the dump as the tool wrote it.", default=True),
        "algorithm": enum(
            "`zstd` (default; the seed's default is gzip) or `gzip`; the seed's `lz4` is refused.",
            ("zstd", "gzip"),
            default="zstd",
        ),
        "level": request.COMPRESSION["properties"]["level"],
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
    "Authenticated encryption (AES-256-GCM in framed chunks) of the stored bytes.",
    {
        "enabled": boolean("Encrypt; needs secretRef.", default=False),
        "algorithm": request.ENCRYPTION["properties"]["algorithm"],
        "secretRef": obj(
            "The Secret key holding the 256-bit key (32 raw bytes, 64 hex digits or base64 of 32 bytes, e.g. "
            "`openssl rand -base64 32`), mounted as a file into the Job.",
            {
                "name": secret_name("Secret name."),
                "namespace": string(
                    "Only the claim's own namespace is accepted (the seed allows another).", maxLength=63
                ),
                "key": string("Key in the Secret.", pattern=SECRET_KEY_PATTERN),
            },
            required=("name", "key"),
        ),
    },
    rules=(
        Rule(
            "!self.enabled || has(self.secretRef)",
            "encryption.enabled needs encryption.secretRef (the Secret key holding the 256-bit key)",
            lambda e: not e["enabled"] or "secretRef" in e,
            ".secretRef",
        ),
    ),
)

DEADLINE = integer(
    "Seconds the Job may run before Kubernetes stops it (its activeDeadlineSeconds); a stopped run never shows "
    "Completed.",
    minimum=1,
    maximum=7 * 24 * 3600,
)

TTL_MESSAGE = (
    "ttl is not supported: dbops never deletes a DatabaseBackup or its stored backup by itself (the Go operator "
    "deleted the object after ttl); remove ttl, and for backups that expire use a DatabaseBackupSchedule with "
    "retention.maxAge, or the object store's lifecycle rules"
)

BACKUP: Schema = obj(
    "One logical backup of one database (a Job that runs once; a published backup is never made again): once "
    "Completed, changes to the spec are ignored; create a new DatabaseBackup for another run.",
    {
        "databaseRef": object_ref("The Database claim (same namespace) whose database is dumped."),
        "storage": STORAGE,
        "compression": COMPRESSION,
        "encryption": ENCRYPTION,
        "activeDeadlineSeconds": {**DEADLINE, "default": 3600},
        "ttl": string("Refused: " + TTL_MESSAGE + ".", maxLength=64),
    },
    required=("databaseRef", "storage"),
    rules=(Rule("!has(self.ttl)", TTL_MESSAGE, lambda s: "ttl" not in s, ".ttl"),),
)

SIZE_FACTS = {
    "uri": string("Where the data object is stored (`s3://bucket/key` or `file:///path`)."),
    "database": string("The database (its name in the server)."),
    "sha256": string("sha256 of the stored bytes."),
    "sizeBytes": integer("Bytes the dump tool wrote."),
}

BACKUP_FACTS: Schema = obj(
    "What the backup Job reported (only from the worker's successful result).",
    {
        **SIZE_FACTS,
        "storedBytes": integer("Bytes stored (after compression and encryption)."),
        "compression": string("Compression of the stored object."),
        "encryption": string("Encryption of the stored object (empty: none)."),
        "serverVersion": string("The server's version."),
        "tool": string("The dump tool and its version."),
        "startedAt": string("When the dump started."),
        "finishedAt": string("When the manifest was published."),
    },
)

BACKUP_KIND = Kind(
    name="DatabaseBackup",
    plural="databasebackups",
    folder="databasebackup",
    spec=BACKUP,
    facts_key="backup",
    facts=BACKUP_FACTS,
    function_only=tuple(BACKUP["properties"]),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("DATABASE", ".spec.databaseRef.name", "The Database claim."),
        column("STORAGE", ".spec.storage.type", "s3 or pvc."),
        column("URI", ".status.backup.uri", "Where the data object is stored.", priority=1),
        MESSAGE_COLUMN,
    ),
)

CONFIRMATION = "I-UNDERSTAND-DATA-LOSS"

RESTORE: Schema = obj(
    "Restore one backup into a database (a Job that runs once; once Completed, changes to the spec are ignored).",
    {
        "backupRef": object_ref(
            "The DatabaseBackup claim (same namespace) to restore; it must be Completed."
        ),
        "fromPath": obj(
            "A backup named by where it is stored instead of by a claim.",
            {
                "storage": STORAGE,
                "backupPath": string(
                    "The backup's name: the directory under the storage's prefix (or subPath) that holds its "
                    "manifest, i.e. the DatabaseBackup claim's name.",
                    pattern=K8S_NAME_PATTERN,
                    maxLength=253,
                ),
                "encryption": ENCRYPTION,
            },
            required=("storage", "backupPath"),
        ),
        "target": obj(
            "Where to restore.",
            {
                "databaseRef": object_ref(
                    "The Database claim (same namespace) to restore into; it must be Ready (create it first)."
                )
            },
            required=("databaseRef",),
        ),
        "overwrite": boolean(
            "Restore into a database that already holds tables, views, sequences or routines; without it such a "
            "target is refused and nothing is written. Needs confirmation.acknowledgeDataLoss.",
            default=False,
        ),
        "confirmation": obj(
            "Confirmation of a destructive restore.",
            {
                "acknowledgeDataLoss": string(
                    f"`{CONFIRMATION}`, required with `overwrite: true`.", maxLength=64
                )
            },
        ),
        "activeDeadlineSeconds": {**DEADLINE, "default": 7200},
    },
    required=("target",),
    rules=(
        Rule(
            "has(self.backupRef) != has(self.fromPath)",
            "set exactly one of backupRef and fromPath",
            lambda s: ("backupRef" in s) != ("fromPath" in s),
        ),
        Rule(
            f"!self.overwrite || (has(self.confirmation) && has(self.confirmation.acknowledgeDataLoss) && "
            f"self.confirmation.acknowledgeDataLoss == '{CONFIRMATION}')",
            f"overwrite: true needs confirmation.acknowledgeDataLoss: {CONFIRMATION}",
            lambda s: (
                not s["overwrite"] or s.get("confirmation", {}).get("acknowledgeDataLoss") == CONFIRMATION
            ),
            ".confirmation",
        ),
    ),
)

RESTORE_FACTS: Schema = obj(
    "What the restore Job reported.",
    {
        **SIZE_FACTS,
        "sourceDatabase": string("The database the backup was made of."),
        "tables": integer("Tables, views, sequences and routines in the target after the restore."),
    },
)

RESTORE_KIND = Kind(
    name="DatabaseRestore",
    plural="databaserestores",
    folder="databaserestore",
    spec=RESTORE,
    facts_key="restore",
    facts=RESTORE_FACTS,
    function_only=tuple(RESTORE["properties"]),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("DATABASE", ".spec.target.databaseRef.name", "The Database claim restored into."),
        column("BACKUP", ".spec.backupRef.name", "The DatabaseBackup claim."),
        MESSAGE_COLUMN,
    ),
)


CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( \S+){4})$"

SCHEDULE: Schema = obj(
    "Backups on a schedule: a Kubernetes CronJob running the backup of `template.spec`, each run stored under the "
    "name of its Job.",
    {
        "schedule": string(
            "Cron schedule, five fields (`0 3 * * *`) or a macro (`@daily`), as a CronJob's.",
            pattern=CRON_PATTERN,
            minLength=1,
            maxLength=128,
        ),
        "timezone": string(
            "IANA time zone the schedule is read in (the CronJob's timeZone).",
            pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
            maxLength=64,
            default="UTC",
        ),
        "paused": boolean("Suspend the CronJob: no new runs start (a running one finishes).", default=False),
        "concurrencyPolicy": enum(
            "`Forbid` (default): a run does not start while the previous one still runs. `Allow` and `Replace` "
            "are refused: two dumps of one database at once only load the server, and Replace kills a running "
            "dump.",
            ("Allow", "Forbid", "Replace"),
            default="Forbid",
        ),
        "template": obj(
            "The backup every run makes.",
            {"spec": {**BACKUP, "description": "A DatabaseBackup's spec."}},
            required=("spec",),
        ),
        "retention": CLAIM_RETENTION,
        "successfulBackupsHistoryLimit": integer(
            "Finished successful Jobs (and their Pods' logs) the CronJob keeps; the backups themselves are kept or "
            "deleted by `retention` only.",
            minimum=0,
            maximum=100,
            default=5,
        ),
        "failedBackupsHistoryLimit": integer(
            "Failed Jobs the CronJob keeps (their Pods' logs say why).", minimum=0, maximum=100, default=3
        ),
    },
    required=("schedule", "template"),
    rules=(
        Rule(
            "self.concurrencyPolicy == 'Forbid'",
            "concurrencyPolicy Allow and Replace are refused: two dumps of one database at once only load the "
            "server, and Replace kills a running dump; use Forbid",
            lambda s: s["concurrencyPolicy"] == "Forbid",
            ".concurrencyPolicy",
        ),
    ),
)

_PRUNED = array(
    "Backups (at most 8 listed), newest first.",
    obj(
        "A backup and why.",
        {
            "name": string("The backup (its directory under the prefix or subPath; its run's Job)."),
            "published": string("When its manifest was written."),
            "why": string("The rule that decided."),
        },
    ),
)

RETENTION_REPORT: Schema = obj(
    "What the latest finished run's retention did (read from its Pod's result: needs the function's "
    "status.readPods).",
    {
        "job": string("The run (Job) that pruned."),
        "finishedAt": string("When that run ended."),
        "dryRun": boolean("Nothing was deleted; wouldDelete lists what would have been."),
        "kept": integer("Backups of this schedule still stored after the run (dry run: that would be)."),
        "deleted": _PRUNED,
        "deletedCount": integer("Backups deleted."),
        "wouldDelete": _PRUNED,
        "wouldDeleteCount": integer("Backups a run without dryRun would delete."),
        "unpublished": array(
            "Directories named like this schedule's runs with objects but no manifest (a run killed before it "
            "could clean up): never deleted by dbops, since nothing proves whose they are; remove them by hand.",
            string("A directory."),
        ),
        "finished": array("Deletions a stopped run left half done, completed.", string("A directory.")),
        "unfinished": array(
            "Deletions a stopped run left half done (dry run: not completed).", string("A directory.")
        ),
        "otherObjects": integer(
            "Directories under the prefix that are not this schedule's backups (left alone)."
        ),
        "warning": string("Why retention did not run to its end (the backup itself was published)."),
    },
)

SCHEDULE_FACTS: Schema = obj(
    "What the CronJob reports.",
    {
        "cronJob": string("The CronJob's name; each run's Job (and backup) is named `<cronJob>-<minutes>`."),
        "lastScheduleTime": string("When a run was last started."),
        "lastSuccessfulTime": string("When a run last completed (its backup was published)."),
        "active": integer("Runs in progress."),
        "retention": RETENTION_REPORT,
    },
)

SCHEDULE_KIND = Kind(
    name="DatabaseBackupSchedule",
    plural="databasebackupschedules",
    folder="databasebackupschedule",
    spec=SCHEDULE,
    facts_key="schedule",
    facts=SCHEDULE_FACTS,
    function_only=tuple(SCHEDULE["properties"]),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("DATABASE", ".spec.template.spec.databaseRef.name", "The Database claim."),
        column("SCHEDULE", ".spec.schedule", "Cron schedule."),
        column(
            "LAST-SUCCESS", ".status.schedule.lastSuccessfulTime", "When a run last completed.", priority=1
        ),
        MESSAGE_COLUMN,
    ),
)
