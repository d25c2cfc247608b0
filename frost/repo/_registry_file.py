"""Feast's registry in a local file: its digest, and materialized intervals recorded into it
without importing Feast.

Feast's ``Registry.apply_materialization`` appends ``(start, end)`` to the view's
``meta.materialization_intervals``, stamps ``meta.last_updated_timestamp``, marks the view
AVAILABLE_ONLINE, moves it to the end of its list, and the file store stamps the registry's
``version_id`` and ``last_updated``. ``record_intervals`` makes the same edit with the
protobuf runtime, through the descriptors of Feast's own ``Registry`` message that the
snapshot carries (tests/test_registry.py holds the two edits equal). Frost's writers hold
an exclusive lock on ``<registry>.frost-lock`` meanwhile, so parallel runs (one Airflow task
per view) cannot lose each other's intervals.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frost.errors import UnknownObject

_AVAILABLE_ONLINE = 4  # feast.core.FeatureViewState.AVAILABLE_ONLINE
_REGISTRY_MESSAGE = "feast.core.Registry"


def file_digest(path: Path) -> str | None:
    """SHA-256 of the registry file's bytes (``None`` when there is no file)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def registry_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every Frost process writing this registry."""
    lock = path.with_name(path.name + ".frost-lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def feast_descriptors() -> bytes:
    """A serialized ``FileDescriptorSet`` of Feast's ``Registry`` message and its imports
    (Feast must be importable; called while compiling a snapshot)."""
    from feast.protos.feast.core import Registry_pb2
    from google.protobuf import descriptor_pb2

    files: dict[str, Any] = {}

    def add(file: Any) -> None:
        if file.name in files:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        files[file.name] = proto

    add(Registry_pb2.DESCRIPTOR)
    return bytes(descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString())


def record_intervals(
    path: Path,
    descriptors: bytes,
    project: str,
    added: list[tuple[str, datetime, datetime]],
) -> bytes:
    """Append each ``(view, start, end)`` to the registry at ``path``; return the new bytes.
    The caller holds ``registry_lock``."""
    registry = _registry_class(descriptors).FromString(path.read_bytes())
    now = datetime.now(UTC)
    for view, start, end in added:
        _append_interval(registry, project, view, start, end, now=now)
    registry.version_id = str(uuid.uuid4())
    registry.last_updated.FromDatetime(now)
    data = bytes(registry.SerializeToString())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    return data


def _append_interval(
    registry: Any, project: str, view: str, start: datetime, end: datetime, *, now: datetime
) -> None:
    for views in (registry.feature_views, registry.stream_feature_views):
        for index, existing in enumerate(views):
            if existing.spec.name == view and existing.spec.project == project:
                updated = type(existing)()
                updated.CopyFrom(existing)
                interval = updated.meta.materialization_intervals.add()
                interval.start_time.FromDatetime(start.astimezone(UTC))
                interval.end_time.FromDatetime(end.astimezone(UTC))
                updated.meta.last_updated_timestamp.FromDatetime(now)
                updated.meta.state = _AVAILABLE_ONLINE
                del views[index]
                views.append(updated)
                return
    raise UnknownObject(f"feature view '{view}' of project '{project}' is not in the registry")


def _registry_class(descriptors: bytes) -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptors).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(_REGISTRY_MESSAGE))
