"""A small Kubernetes REST client: mTLS to the API server, discovery of resource paths, server-side apply, get,
list, patch, delete. Enough for the control plane, the process node and the tests, and nothing hidden: every call
is one HTTP request whose path a reader can check against the API reference."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import urllib3
import yaml

Obj = dict[str, Any]
T = TypeVar("T")
FIELD_MANAGER = "dbops-tests"


class ApiError(Exception):
    def __init__(self, status: int, body: Obj, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = str(body.get("reason", ""))
        self.message = str(body.get("message", body))
        super().__init__(f"{method} {path}: {status} {self.message}")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca: Path
    cert: Path
    key: Path

    def kubeconfig(self, user: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": self.server, "certificate-authority": str(self.ca)},
                    }
                ],
                "users": [
                    {
                        "name": user,
                        "user": {"client-certificate": str(self.cert), "client-key": str(self.key)},
                    }
                ],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
                "current-context": "local",
            }
        )


@dataclass(frozen=True)
class Resource:
    group_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class Kube:
    def __init__(self, creds: Credentials, timeout: float = 30) -> None:
        self.creds = creds
        self.http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(creds.ca),
            cert_file=str(creds.cert),
            key_file=str(creds.key),
            timeout=urllib3.Timeout(connect=5, read=timeout),
            retries=False,
            maxsize=8,  # the node's threads, the runtime thread and the tests share one client
        )
        self._resources: dict[tuple[str, str], Resource] = {}

    # --- raw requests -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Obj:
        url = self.creds.server + path + (f"?{urlencode(query)}" if query else "")
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        rsp = self.http.request(method, url, body=data, headers={"Content-Type": content_type})
        try:
            payload = json.loads(rsp.data) if rsp.data else {}
        except ValueError:
            payload = {"message": rsp.data.decode(errors="replace")}
        if rsp.status >= 400:
            raise ApiError(rsp.status, payload, method, path)
        return payload if isinstance(payload, dict) else {"value": payload}

    def healthy(self, endpoint: str = "/readyz") -> bool:
        rsp = self.http.request("GET", self.creds.server + endpoint)
        return rsp.status == 200

    # --- discovery ----------------------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for entry in self.request("GET", path).get("resources", []):
                if "/" not in entry["name"]:
                    res = Resource(api_version, entry["name"], bool(entry["namespaced"]))
                    self._resources[(api_version, entry["kind"])] = res
        if key not in self._resources:
            raise ApiError(404, {"message": f"no resource for {api_version} {kind}"}, "GET", api_version)
        return self._resources[key]

    def wait_for_kind(self, api_version: str, kind: str, timeout: float = 120) -> Resource:
        """A kind that a CRD is about to serve (discovery fails until it is established)."""
        return wait(lambda: self._try_resource(api_version, kind), timeout, f"{kind}.{api_version} served")

    def _try_resource(self, api_version: str, kind: str) -> Resource | None:
        try:
            return self.resource(api_version, kind)
        except ApiError:
            return None

    # --- objects ------------------------------------------------------------------------------------------------

    def apply(self, obj: Obj, namespace: str | None = None, manager: str = FIELD_MANAGER) -> Obj:
        """Server-side apply (as `kubectl apply --server-side --force-conflicts`)."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace") or namespace
        if res.namespaced and not ns:
            ns = "default"
        if res.namespaced:
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": ns}}
        return self.request(
            "PATCH",
            res.path(ns, obj["metadata"]["name"]),
            obj,
            content_type="application/apply-patch+yaml",
            query={"fieldManager": manager, "force": "true"},
        )

    def apply_all(self, docs: Iterable[Obj], namespace: str | None = None) -> list[Obj]:
        return [self.apply(doc, namespace) for doc in docs]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.request("GET", self.resource(api_version, kind).path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, labels: str | None = None
    ) -> list[Obj]:
        query = {"labelSelector": labels} if labels else None
        return list(
            self.request("GET", self.resource(api_version, kind).path(namespace), query=query).get(
                "items", []
            )
        )

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        res = self.resource(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace") or namespace
        return self.request("POST", res.path(ns), obj)

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        *,
        sub: str | None = None,
    ) -> Obj:
        """A JSON merge patch (`kubectl patch --type merge`), on the object or a subresource such as status."""
        path = self.resource(api_version, kind).path(namespace, name, sub)
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, **options: Any
    ) -> Obj:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
        return self.request("DELETE", self.resource(api_version, kind).path(namespace, name), body)

    def post(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)


def wait(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something other than None/False; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no {what} within {timeout:.0f} s" + (f" (last error: {last})" if last else "")
            )
        time.sleep(interval)


def load_yaml(*paths: Path) -> list[Obj]:
    docs: list[Obj] = []
    for path in paths:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs
