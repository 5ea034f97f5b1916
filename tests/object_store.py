"""A private S3-compatible object store for tests and benchmarks: the real versitygw gateway, not a mock.

`private_object_store()` starts the pinned `versitygw` (built by tools/s3/build-s3-server.sh) on a free port on
127.0.0.1 over a temporary directory (its posix backend keeps each object as a plain file under
`data_dir/<bucket>/<key>`), with generated keys, optionally TLS from a generated CA, creates a bucket, and on exit
stops the process and removes everything. The gateway writes an S3 access log, so tests can check which operations
a client really sent (`operations()`: s3_CreateMultipartUpload, s3_UploadPart, s3_AbortMultipartUpload,
s3_ListObjectsV2, s3_DeleteObjects, ...).

Keys reach the gateway and its admin CLI through their environment, never their argv.

Run `python -m tests.object_store` to start one and print how to reach it (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import CertificateAuthority, TLSFiles, free_port, stop_process

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "s3" / "build-s3-server.sh"
REGION = "us-east-1"
HEALTH_PATH = "/health"
START_TIMEOUT = 30.0


def pinned_version(script: Path = BUILD_SCRIPT) -> str:
    """The versitygw version the build script pins (the script is the one place it is written)."""
    match = re.search(r"^VERSITYGW_VERSION=(\S+)", script.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{script} pins no VERSITYGW_VERSION")
    return match.group(1)


def find_server_binary(environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """Where the gateway binary is: `(path, "")`, or `(None, why it is missing and how to build it)`.
    DBOPS_S3_SERVER names the binary explicitly; otherwise it is looked up in the tool cache under the pinned
    version (DBOPS_TOOLS_CACHE, default ~/.cache/dbops-tools), where the build script puts it."""
    explicit = environ.get("DBOPS_S3_SERVER")
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit, ""
        return None, f"DBOPS_S3_SERVER={explicit} is not an executable file"
    version = pinned_version()
    root = Path(environ.get("DBOPS_TOOLS_CACHE") or Path(environ.get("HOME", "~")) / ".cache" / "dbops-tools")
    path = root.expanduser() / f"versitygw-{version}" / "bin" / "versitygw"
    if os.access(path, os.X_OK):
        return str(path), ""
    return None, (
        f"versitygw {version} is not built ({path} is missing): run tools/s3/build-s3-server.sh "
        "(about two minutes from the Go module proxy), or point DBOPS_S3_SERVER at a versitygw binary"
    )


@dataclass(frozen=True)
class AccessLogEntry:
    operation: str  # e.g. "s3_UploadPart"
    bucket: str
    key: str  # "-" for bucket-level operations
    uri: str  # path and query as sent: /<bucket>/<key>?... when the client addresses path-style
    status: int


# The gateway writes the AWS server access log format: owner bucket [time] ip requester request-id operation key
# request-uri status error ...
_ACCESS_LINE = re.compile(
    r"^\S+ (?P<bucket>\S+) \[[^\]]*\] \S+ \S+ \S+ (?P<op>\S+) (?P<key>\S+) (?P<uri>\S+) (?P<status>\d+) "
)


def parse_access_log(text: str) -> list[AccessLogEntry]:
    return [
        AccessLogEntry(m["op"], m["bucket"], m["key"], m["uri"], int(m["status"]))
        for m in map(_ACCESS_LINE.match, text.splitlines())
        if m
    ]


class _Gateway:
    """The versitygw process: started and stopped on the same port, so a test can take the store down."""

    def __init__(
        self, binary: str, base: Path, access_key: str, secret_key: str, tls: TLSFiles | None
    ) -> None:
        self.binary = binary
        self.base = base
        self.data_dir = base / "data"
        self.data_dir.mkdir(parents=True)
        self.log_path = base / "gateway.log"
        self.access_log_path = base / "access.log"
        self.tls = tls
        self.port = free_port()
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # A clean environment: nothing from the caller's (VGW_* settings, proxies) changes how the gateway runs.
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base)}
        self.keys = {"ROOT_ACCESS_KEY": access_key, "ROOT_SECRET_KEY": secret_key}
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        tls = ["--cert", self.tls.cert, "--key", self.tls.key] if self.tls else []
        return [
            self.binary,
            "--port", f"127.0.0.1:{self.port}",
            "--region", REGION,
            "--health", HEALTH_PATH,
            "--access-log", str(self.access_log_path),
            "--quiet",
            *tls,
            "posix", str(self.data_dir),
        ]  # fmt: skip

    def start(self) -> None:
        if self.proc is not None:
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                env={**self.env, **self.keys},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for pytest is not also delivered to the gateway
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        context = ssl.create_default_context(cafile=self.tls.ca) if self.tls else None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"versitygw exited at start on port {self.port}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + HEALTH_PATH, timeout=2, context=context) as rsp:
                    if rsp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"versitygw did not answer on {self.endpoint} in {START_TIMEOUT}s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout=10)

    def admin(self, *args: str) -> None:
        """Run the gateway's own admin CLI against it (keys and CA through the environment)."""
        env = {
            **self.env,
            "ADMIN_ACCESS_KEY": self.keys["ROOT_ACCESS_KEY"],
            "ADMIN_SECRET_KEY": self.keys["ROOT_SECRET_KEY"],
            "ADMIN_REGION": REGION,
        }
        if self.tls:
            env["SSL_CERT_FILE"] = self.tls.ca
        proc = subprocess.run(
            [self.binary, "admin", "--endpoint-url", self.endpoint, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"versitygw admin {args[0]} failed: {proc.stdout}{proc.stderr}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class ObjectStore:
    """How to reach the private store, and a few handles on it for fault tests."""

    endpoint: str  # https://127.0.0.1:PORT with TLS, http://... without; path-style addressing
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str
    ca_path: str | None  # the CA that signed the gateway's certificate; None without TLS
    data_dir: Path  # the gateway's storage: data_dir/<bucket>/<key> is the object's bytes
    _gateway: _Gateway = field(repr=False, compare=False)

    @property
    def tls(self) -> bool:
        return self.ca_path is not None

    @property
    def pid(self) -> int | None:
        proc = self._gateway.proc
        return proc.pid if proc else None

    def object_path(self, key: str, bucket: str | None = None) -> Path:
        """The file that holds an object's bytes (to corrupt or inspect it behind the client's back)."""
        return self.data_dir / (bucket or self.bucket) / key

    def pending_multipart_uploads(self, key: str | None = None, bucket: str | None = None) -> list[Path]:
        """Multipart uploads started and neither completed nor aborted, of one key or all (the gateway keeps
        each one as a directory <bucket>/.sgwtmp/multipart/<sha256 of the key>/<upload id>)."""
        root = self.data_dir / (bucket or self.bucket) / ".sgwtmp" / "multipart"
        pattern = f"{hashlib.sha256(key.encode()).hexdigest()}/*" if key is not None else "*/*"
        return sorted(p for p in root.glob(pattern) if p.is_dir())

    def create_bucket(self, name: str) -> None:
        self._gateway.admin("create-bucket", "--owner", self.access_key, "--bucket", name)

    def access_log(self) -> list[AccessLogEntry]:
        try:
            return parse_access_log(self._gateway.access_log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def access_log_mark(self) -> int:
        """A position in the access log; `operations(since=mark)` lists only what came after it."""
        return len(self.access_log())

    def operations(self, since: int = 0, key: str | None = None) -> list[str]:
        """The S3 operations the gateway served (in order), e.g. ["s3_CreateMultipartUpload", "s3_UploadPart"]."""
        return [e.operation for e in self.access_log()[since:] if key is None or e.key == key]

    def stop(self) -> None:
        """Take the store down (connections refused) until `start()`; the data stays."""
        self._gateway.stop()

    def start(self) -> None:
        self._gateway.start()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The store is unreachable inside the block and back, with the same endpoint and data, after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextlib.contextmanager
def private_object_store(
    binary: str | None = None, tls: bool = True, bucket: str = "dbops-backups"
) -> Iterator[ObjectStore]:
    """Start a private versitygw with one bucket; stop it and remove its files on exit."""
    if binary is None:
        binary, why = find_server_binary()
        if binary is None:
            raise FileNotFoundError(why)
    base = Path(tempfile.mkdtemp(prefix="dbops-s3-"))
    gateway: _Gateway | None = None
    try:
        ca_files = None
        if tls:
            ca = CertificateAuthority(base / "ca", name="dbops object store test CA")
            ca_files = ca.issue("gateway", "127.0.0.1", hosts=("127.0.0.1", "localhost"))
        access_key = "DBOPS" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        for attempt in range(3):
            gateway = _Gateway(binary, base / f"gw{attempt}", access_key, secret_key, ca_files)
            try:
                gateway.start()
                break
            except RuntimeError:
                # free_port() can lose the port to another process before the gateway binds it: try another.
                if attempt == 2 or "address already in use" not in gateway.log_tail():
                    raise
        assert gateway is not None
        store = ObjectStore(
            endpoint=gateway.endpoint,
            bucket=bucket,
            access_key=access_key,
            secret_key=secret_key,
            region=REGION,
            ca_path=ca_files.ca if ca_files else None,
            data_dir=gateway.data_dir,
            _gateway=gateway,
        )
        store.create_bucket(bucket)
        yield store
    finally:
        if gateway is not None:
            gateway.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    with private_object_store() as running:
        print(f"endpoint={running.endpoint} bucket={running.bucket} region={running.region}")
        print(f"access_key={running.access_key} secret_key={running.secret_key} ca={running.ca_path}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
