"""Which message an apiVersion and kind travel as, from the generated Kubernetes packages.

A kind has a message when its group and version are one of the vendored packages
(`json_fields.GROUPS`) and the package defines a message of that name; apimachinery's meta/v1
types (Status, DeleteOptions, WatchEvent) belong to every group version, as kube registers them.
CustomResourceDefinitions' kinds never have one: kube-apiserver serves them in JSON only.
"""

from __future__ import annotations

import importlib
from functools import cache

from google.protobuf import message_factory
from google.protobuf.message import Message

from kvd.local.apiserver.protobuf.gen import json_fields

GEN = "kvd.local.apiserver.protobuf.gen"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"


def _load() -> dict[str, dict[str, type[Message]]]:
    """apiVersion ("v1", "events.k8s.io/v1"; "" for apimachinery's meta/v1) → kind → class."""
    packages: dict[str, dict[str, type[Message]]] = {}
    for package, group in json_fields.GROUPS.items():
        if group is None and package != META:
            continue  # shared types (Quantity, RawExtension), never a whole object
        module = importlib.import_module(f"{GEN}.{package}.generated_pb2")
        version = package.rsplit(".", 1)[-1]
        api_version = "" if group is None else f"{group}/{version}" if group else version
        packages[api_version] = {
            name: message_factory.GetMessageClass(descriptor)
            for name, descriptor in module.DESCRIPTOR.message_types_by_name.items()
        }
    packages["meta.k8s.io/v1"] = packages[""]
    return packages


_PACKAGES = _load()


def message_class(api_version: str, kind: str) -> type[Message] | None:
    """The message of `kind` in `api_version`, or None when it has no protobuf form."""
    if api_version not in _PACKAGES or not api_version:
        return None
    return _PACKAGES[api_version].get(kind) or _PACKAGES[""].get(kind)


@cache
def has_protobuf(group: str, version: str, kind: str) -> bool:
    return message_class(f"{group}/{version}" if group else version, kind) is not None


def meta(kind: str) -> type[Message]:
    """One of apimachinery's meta/v1 messages (Status, WatchEvent, …)."""
    return _PACKAGES[""][kind]
