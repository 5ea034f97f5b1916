"""From a DatabaseInstance spec (defaults filled in): the worker request's `connection`, the Secrets the Job maps
in, and the endpoint applications see. Never a secret value: only Secret names and keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function.spec.defaults import spec_with_defaults


@dataclass(frozen=True)
class Endpoint:
    """What an application needs to connect, apart from the password."""

    engine: str
    host: str
    port: int
    database: str
    ssl_mode: str | None


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class TLSFiles:
    """The instance's TLS Secret and which of its keys hold the CA, client certificate and key."""

    secret: str
    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class ServerAccess:
    engine: str
    connection: dict[str, Any]
    admin_username: SecretKeyRef
    admin_password: SecretKeyRef
    tls: TLSFiles | None
    # The worker request's `policy`: what the platform lets claims on this instance do (empty: the defaults).
    policy: dict[str, Any]
    # resourceVersions of the admin and TLS Secrets: fixing or rotating them re-runs the worker (the hash covers it)
    revision: str = ""

    def endpoint(self, database: str) -> Endpoint:
        return Endpoint(
            engine=self.engine,
            host=self.connection["host"],
            port=self.connection["port"],
            database=database,
            ssl_mode=self.connection.get("sslMode"),
        )


def ssl_mode(spec: dict[str, Any]) -> str | None:
    """`tls.mode` when TLS is enabled (default verify-full), else the engine block's own setting, else unset."""
    tls = spec.get("tls", {})
    if tls.get("enabled"):
        return str(tls.get("mode", "verify-full"))
    if tls.get("mode") == "disable":
        return "disable"
    if spec["engine"] == "postgres":
        mode = spec.get("postgres", {}).get("sslMode")
    else:
        mode = spec.get("mysql", {}).get("tls")
    return str(mode) if mode else None


def server_access(instance: dict[str, Any]) -> ServerAccess:
    """`instance` is a DatabaseInstance spec normalized by `dbops_api.validation.normalize`."""
    spec = spec_with_defaults("DatabaseInstance", instance)
    engine = spec["engine"]
    conn = spec["connection"]
    out: dict[str, Any] = {"host": conn["host"], "port": conn["port"]}
    mode = ssl_mode(spec)
    if mode:
        out["sslMode"] = mode
    if engine == "postgres":
        pg = spec["postgres"]
        out["database"] = conn.get("database", "postgres")
        out["connectTimeout"] = pg["connectTimeout"]
        out["statementTimeout"] = pg["statementTimeout"]
        out["applicationName"] = pg["applicationName"]
    else:
        my = spec["mysql"]
        timeouts = my["timeouts"]
        out["connectTimeout"] = timeouts["connect"]
        out["readTimeout"] = timeouts["read"]
        out["writeTimeout"] = timeouts["write"]
        out["charset"] = my["charset"]
        if "collation" in my:
            out["collation"] = my["collation"]
    secret = conn["secretRef"]
    keys = secret["keys"]
    tls_spec = spec["tls"]
    tls = None
    if tls_spec.get("enabled") and "secretRef" in tls_spec:
        ref = tls_spec["secretRef"]
        tkeys = ref["keys"]
        tls = TLSFiles(secret=ref["name"], ca=tkeys["ca"], cert=tkeys["cert"], key=tkeys["key"])
    return ServerAccess(
        engine=engine,
        connection=out,
        admin_username=SecretKeyRef(secret["name"], keys["username"]),
        admin_password=SecretKeyRef(secret["name"], keys["password"]),
        tls=tls,
        policy={"allowGlobalGrants": True} if spec.get("allowGlobalGrants") else {},
    )
