"""The `backup` and `restore` actions (docs/worker.md, "Backup and restore").

A backup streams the dump tool's output through compression and optional encryption into the storage, and
publishes it by writing its manifest last, only when the dump is known to be complete:

- `pipeline`: the backup action, start to result (what runs, in which order, what is published or removed)
- `restore`: the restore action (manifest first, target checks, checksum, the client tool)
- `process`: running the client tools (credentials file, environment, version, what their errors mean)
- `dump_postgres`, `dump_mysql`: the engines' dump and restore tools: command lines, credentials files, version
  rules, the end-of-dump evidence
- `codec`: compression (zstd, gzip) and the framed AES-256-GCM encryption, as streams
- `storage`: an S3-compatible object store (obstore) or a mounted directory
- `manifest`: what is stored next to a backup, and how it is read back

Imported only by these actions (`worker.cli`), so the other actions do not load obstore, zstandard or cryptography.
"""
