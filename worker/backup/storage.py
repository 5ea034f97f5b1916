"""Where backups are stored: an S3-compatible object store (through obstore) or a mounted directory.

Both offer the same few operations on keys relative to the storage's root (the S3 prefix, the volume's path): a
streamed upload, a small write, a streamed read, a listing and a delete. Credentials never appear in a request:
the object store's keys are files the Job mounts from a Secret, named by DBOPS_S3_ACCESS_KEY_FILE and
DBOPS_S3_SECRET_KEY_FILE; DBOPS_S3_CA_FILE names a CA bundle to trust instead of the system's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from worker.errors import PermanentError, TransientError, WorkerError

PART_SIZE = 8 << 20  # each multipart part; two are in flight at most
UPLOAD_CONCURRENCY = 2
READ_CHUNK = 1 << 20


class Storage(Protocol):
    def uri(self, key: str) -> str: ...

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> None: ...

    def put_small(self, key: str, data: bytes) -> None: ...

    def read_stream(self, key: str) -> Iterator[bytes]: ...

    def read_small(self, key: str) -> bytes | None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def delete(self, keys: list[str]) -> None: ...

    def secrets(self) -> list[str]: ...


def _read_secret_file(variable: str, env: Mapping[str, str]) -> str:
    path = env.get(variable)
    if not path:
        raise PermanentError(
            "InvalidRequest", f"environment: {variable} not set (the Job mounts the object store's Secret)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(
            "InvalidRequest",
            f"{variable}: cannot read {path}: {getattr(exc, 'strerror', None) or 'not text'}",
        ) from None
    if not value:
        raise PermanentError("InvalidRequest", f"{variable}: {path} is empty")
    return value


def open_storage(storage: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> Storage:
    if storage["type"] == "volume":
        return VolumeStorage(Path(storage["volume"]["path"]))
    return S3Storage(storage["s3"], env)


def _private_file(path: Path) -> BinaryIO:
    """A file only the worker's user can read (a dump holds every row of the database), truncated if it exists."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


class VolumeStorage:
    """Files under a mounted directory, mode 0600 in directories of mode 0700. A streamed file is written in place
    and removed on failure; a small one (the manifest) is written to a temporary name, synced and renamed, so it
    appears whole or not at all."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise PermanentError(
                "StorageNotFound", f"request.spec.storage.volume.path: {root} is not a mounted directory"
            )
        self.root = root

    def uri(self, key: str) -> str:
        return f"file://{self.root / key}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _private_file(path) as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise TransientError("StorageError", f"writing {path}: {exc.strerror}") from None

    def put_small(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temporary = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _private_file(temporary) as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise TransientError("StorageError", f"writing {path}: {exc.strerror}") from None

    def read_stream(self, key: str) -> Iterator[bytes]:
        try:
            with open(self._path(key), "rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    yield chunk
        except FileNotFoundError:
            raise PermanentError("BackupNotFound", f"{self.uri(key)} does not exist") from None
        except OSError as exc:
            raise TransientError("StorageError", f"reading {self.uri(key)}: {exc.strerror}") from None

    def read_small(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransientError("StorageError", f"reading {self.uri(key)}: {exc.strerror}") from None

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            # A backup's directory goes with its last file (rmdir refuses a directory that is not empty).
            if path.parent != self.root:
                with contextlib.suppress(OSError):
                    path.parent.rmdir()

    def secrets(self) -> list[str]:
        return []


class S3Storage:
    def __init__(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        from obstore.store import S3Store

        self._access_key = _read_secret_file("DBOPS_S3_ACCESS_KEY_FILE", env)
        self._secret_key = _read_secret_file("DBOPS_S3_SECRET_KEY_FILE", env)
        self.bucket = config["bucket"]
        self.prefix = config.get("prefix", "")
        endpoint = config.get("endpoint")
        client: dict[str, Any] = {"allow_http": bool(config.get("allowHttp"))}
        ca_path = env.get("DBOPS_S3_CA_FILE")
        if ca_path:
            try:
                client["root_certificate"] = Path(ca_path).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                raise PermanentError("InvalidRequest", f"DBOPS_S3_CA_FILE: cannot read {ca_path}") from None
        settings: dict[str, Any] = {
            "access_key_id": self._access_key,
            "secret_access_key": self._secret_key,
            "region": config.get("region", "us-east-1"),
            "virtual_hosted_style_request": not config.get("forcePathStyle", False),
            "client_options": client,
            "retry_config": {"max_retries": 3, "retry_timeout": timedelta(seconds=60)},
        }
        if endpoint:
            settings["endpoint"] = endpoint.rstrip("/")
        try:
            self._store = S3Store(self.bucket, **settings)
        except Exception as exc:
            raise _classify(exc, "configuring the object store") from None
        self._endpoint = endpoint or f"https://s3.{settings['region']}.amazonaws.com"

    def secrets(self) -> list[str]:
        return [self._secret_key]

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        import obstore

        try:
            obstore.put(
                self._store,
                self._key(key),
                iter(chunks),
                chunk_size=PART_SIZE,
                max_concurrency=UPLOAD_CONCURRENCY,
            )
        except WorkerError:
            raise
        except Exception as exc:
            raise _classify(exc, f"uploading {self.uri(key)}") from None

    def put_small(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, self._key(key), data, use_multipart=False)
        except Exception as exc:
            raise _classify(exc, f"writing {self.uri(key)}") from None

    def read_stream(self, key: str) -> Iterator[bytes]:
        import obstore

        try:
            for chunk in obstore.get(self._store, self._key(key)).stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)
        except FileNotFoundError:
            raise PermanentError("BackupNotFound", f"{self.uri(key)} does not exist") from None
        except WorkerError:
            raise
        except Exception as exc:
            raise _classify(exc, f"reading {self.uri(key)}") from None

    def read_small(self, key: str) -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self._store, self._key(key)).bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise _classify(exc, f"reading {self.uri(key)}") from None

    def keys(self, prefix: str) -> list[str]:
        import obstore

        full = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        try:
            return sorted(
                meta["path"][cut:] for batch in obstore.list(self._store, prefix=full) for meta in batch
            )
        except Exception as exc:
            raise _classify(exc, f"listing {self.uri(prefix)}") from None

    def delete(self, keys: list[str]) -> None:
        import obstore

        if not keys:
            return
        try:
            obstore.delete(self._store, [self._key(k) for k in keys])
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise _classify(exc, f"deleting under {self.uri('')}") from None


_PERMANENT = {
    "SignatureDoesNotMatch": ("StorageAccessDenied", "the object store refused the keys (wrong secret key)"),
    "InvalidAccessKeyId": ("StorageAccessDenied", "the object store does not know the access key"),
    "AccessDenied": ("StorageAccessDenied", "the object store denied access"),
    "NoSuchBucket": ("StorageNotFound", "the bucket does not exist"),
    "UnknownIssuer": (
        "TLSError",
        "the object store's certificate is not signed by a trusted CA (DBOPS_S3_CA_FILE)",
    ),
    "certificate": ("TLSError", "the object store's certificate did not verify"),
}


def _classify(exc: BaseException, doing: str) -> WorkerError:
    """An object-store failure as a worker error: refused credentials, a missing bucket and TLS failures are
    permanent; connection failures and server errors transient. The message names the operation and the store's
    own error code, never the client's full text (it may hold request headers)."""
    text = str(exc)
    for marker, (code, message) in _PERMANENT.items():
        if marker in text:
            return PermanentError(code, f"{doing}: {message}")
    if type(exc).__name__ in ("PermissionDeniedError", "UnauthenticatedError"):
        return PermanentError("StorageAccessDenied", f"{doing}: the object store denied access")
    first = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__
    return TransientError("StorageUnavailable", f"{doing}: {first}")
