"""An in-memory stand-in for the Kubernetes API: objects by (apiVersion, kind, namespace, name)."""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str, str]


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


class ObjectStore:
    """Objects with resourceVersion and uid, as the API server would keep them."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._versions = itertools.count(1)
        self.changes = 0  # bumped on every real create, update or delete

    def put(self, obj: Obj) -> Obj:
        """Create or replace an object; bumps resourceVersion only when something changed."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = key_of(obj)
        old = self._objects.get(key)
        if old is not None:
            meta["uid"] = old["metadata"]["uid"]
            meta.setdefault("creationTimestamp", old["metadata"].get("creationTimestamp"))
            if _comparable(old) == _comparable(obj):
                return old
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(next(self._versions))
        self._objects[key] = obj
        self.changes += 1
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj | None:
        return self._objects.get((api_version, kind, namespace, name))

    def delete(self, obj_or_key: Obj | Key) -> bool:
        key = obj_or_key if isinstance(obj_or_key, tuple) else key_of(obj_or_key)
        removed = self._objects.pop(key, None) is not None
        self.changes += removed
        return removed

    def select(
        self,
        api_version: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[Obj]:
        out = []
        for (av, k, ns, _), obj in sorted(self._objects.items()):
            if (
                (api_version and av != api_version)
                or (kind and k != kind)
                or (namespace is not None and ns != namespace)
            ):
                continue
            have = obj.get("metadata", {}).get("labels", {})
            if labels and any(have.get(lk) != lv for lk, lv in labels.items()):
                continue
            out.append(obj)
        return out

    def all(self) -> list[Obj]:
        return list(self._objects.values())

    def dump(self) -> list[Obj]:
        return [copy.deepcopy(o) for o in self._objects.values()]

    def load(self, objects: list[Obj]) -> None:
        for obj in objects:
            self._objects[key_of(obj)] = copy.deepcopy(obj)
        versions = [int(o["metadata"].get("resourceVersion", 0)) for o in objects] or [0]
        self._versions = itertools.count(max(versions) + 1)


def _comparable(obj: Obj) -> str:
    clean = copy.deepcopy(obj)
    clean.get("metadata", {}).pop("resourceVersion", None)
    return json.dumps(clean, sort_keys=True, default=str)
