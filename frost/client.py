"""A typed Python client for ``frost serve`` (or any server of Feast's gRPC ServingService).

::

    with FeatureClient("localhost:6566") as client:
        result = client.get("churn_prediction", {"user_id": [1001, 1002]})
        result.to_dicts()        # [{"user_id": 1001, "country": "BR", ...}, ...]
        result.rows()[0].status("level")   # FieldStatus.PRESENT
        result.to_pandas()       # values, plus a "<name>__status" column per feature

Errors from the server raise ``ServingError`` with the gRPC status code and message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frost.codec import python_value
from frost.errors import FrostError
from frost.online import FieldStatus

__all__ = ["FeatureClient", "FeatureResult", "FeatureRow", "ServingError"]


class ServingError(FrostError):
    """The feature server answered with an error (``code`` is the gRPC status name)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.grpc_status = code  # type: ignore[misc]  # same code as the server's


@dataclass(frozen=True)
class FeatureRow:
    """One entity row: every name's value, status and event time."""

    values: dict[str, Any]
    statuses: dict[str, FieldStatus]
    event_times: dict[str, datetime | None]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def status(self, name: str) -> FieldStatus:
        return self.statuses[name]


@dataclass(frozen=True)
class FeatureResult:
    """A lookup's answer, column by column, in the server's order (join keys first)."""

    names: list[str]
    values: dict[str, list[Any]]
    statuses: dict[str, list[FieldStatus]]
    event_times: dict[str, list[datetime | None]]

    def __len__(self) -> int:
        return len(next(iter(self.values.values()), []))

    def rows(self) -> list[FeatureRow]:
        return [
            FeatureRow(
                {n: self.values[n][i] for n in self.names},
                {n: self.statuses[n][i] for n in self.names},
                {n: self.event_times[n][i] for n in self.names},
            )
            for i in range(len(self))
        ]

    def to_dicts(self) -> list[dict[str, Any]]:
        """One ``{name: value}`` dict per entity row (withheld or missing values are None)."""
        return [{n: self.values[n][i] for n in self.names} for i in range(len(self))]

    def to_pandas(self, statuses: bool = True) -> Any:
        """A DataFrame of the values and, unless ``statuses=False``, a ``<name>__status``
        column (status names) after each feature."""
        import pandas as pd

        data: dict[str, Any] = {}
        for name in self.names:
            data[name] = self.values[name]
            if statuses and any(s != FieldStatus.PRESENT for s in self.statuses[name]):
                data[f"{name}__status"] = [s.name for s in self.statuses[name]]
            elif statuses:
                data[f"{name}__status"] = [FieldStatus.PRESENT.name] * len(self)
        return pd.DataFrame(data)

    @classmethod
    def from_proto(cls, response: Any) -> FeatureResult:
        names = list(response.metadata.feature_names.val)
        values, statuses, times = {}, {}, {}
        for name, vector in zip(names, response.results, strict=True):
            values[name] = [python_value(v) for v in vector.values]
            statuses[name] = [FieldStatus(s) for s in vector.statuses]
            times[name] = [_time(t) for t in vector.event_timestamps]
        return cls(names, values, statuses, times)


def _time(stamp: Any) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)


class FeatureClient:
    """A connection to a feature server.

    Args:
        target: ``host:port`` of the server.
        token: bearer token, when the server has clients configured.
        tls_root_cert: PEM bytes or a path of the CA certificate, for a server with TLS.
        timeout: default deadline of each call, in seconds.
    """

    def __init__(
        self,
        target: str = "localhost:6566",
        *,
        token: str | None = None,
        tls_root_cert: bytes | str | Path | None = None,
        timeout: float = 2.0,
    ) -> None:
        import grpc
        from feast.protos.feast.serving import ServingService_pb2_grpc

        if tls_root_cert is not None:
            pem = (
                tls_root_cert
                if isinstance(tls_root_cert, bytes)
                else Path(tls_root_cert).read_bytes()
            )
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(pem))
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = ServingService_pb2_grpc.ServingServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def get(
        self,
        service: str | None = None,
        entities: Mapping[str, Sequence[Any]] | None = None,
        *,
        features: Sequence[str] | None = None,
        full_feature_names: bool = False,
        request_data: Mapping[str, Sequence[Any]] | None = None,
        timeout: float | None = None,
    ) -> FeatureResult:
        """Look up a feature service (or ``features``, ``view:feature`` refs) for the
        entity rows in ``entities`` (columns by join key); ``request_data`` holds the
        request fields of on-demand views, one value per row (``None``: null)."""
        from feast.protos.feast.serving import ServingService_pb2 as pb

        if (service is None) == (features is None):
            raise FrostError("pass a feature service name or features=[...], not both")
        request = pb.GetOnlineFeaturesRequest(full_feature_names=full_feature_names)
        if service is not None:
            request.feature_service = service
        else:
            request.features.val.extend(features or [])
        for name, column in (entities or {}).items():
            request.entities[name].val.extend(_value(name, v) for v in column)
        for name, column in (request_data or {}).items():
            request.request_context[name].val.extend(_request_value(name, v) for v in column)
        response = self._call(self._stub.GetOnlineFeatures, request, timeout)
        return FeatureResult.from_proto(response)

    def list_services(self, timeout: float | None = None) -> list[Any]:
        """The feature services this client may use, with features and contracts
        (``frost.serving.v1.FeatureServiceInfo`` messages)."""
        from frost.proto import frost_serving_pb2, frost_serving_pb2_grpc

        stub = frost_serving_pb2_grpc.FrostServingStub(self._channel)
        request = frost_serving_pb2.ListFeatureServicesRequest()
        return list(self._call(stub.ListFeatureServices, request, timeout).services)

    def health(self, timeout: float | None = None) -> str:
        """``SERVING`` or ``NOT_SERVING`` (Redis unreachable)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        reply = self._call(stub.Check, health_pb2.HealthCheckRequest(service=""), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FeatureClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        import grpc

        try:
            return method(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise ServingError(exc.code().name, exc.details() or "") from exc


def _request_value(name: str, value: Any) -> Any:
    """A request field's value as a ``Value`` (floats as doubles, lists as lists)."""
    from feast.protos.feast.types.Value_pb2 import Value

    if value is None:
        return Value()
    if isinstance(value, bool):
        return Value(bool_val=value)
    if isinstance(value, float):
        return Value(double_val=value)
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        lists = {bool: "bool_list_val", int: "int64_list_val", float: "double_list_val",
                 str: "string_list_val", bytes: "bytes_list_val"}  # fmt: skip
        if len(kinds) == 1 and (kind := lists.get(kinds.pop())) is not None:
            message = Value()
            getattr(message, kind).val.extend(value)
            return message
        raise FrostError(f"request field '{name}': cannot send the list {value!r}")
    try:
        return _value(name, value)
    except FrostError as exc:
        raise FrostError(f"request field '{name}': cannot send {value!r}") from exc


def _value(name: str, value: Any) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value

    if isinstance(value, bool):
        raise FrostError(f"entity key '{name}': {value!r} is not a valid key value")
    if isinstance(value, int):
        return Value(int64_val=value)
    if isinstance(value, str):
        return Value(string_val=value)
    if isinstance(value, bytes):
        return Value(bytes_val=value)
    if isinstance(value, datetime):
        return Value(unix_timestamp_val=int(value.timestamp()))
    raise FrostError(f"entity key '{name}': {type(value).__name__} {value!r} is not a key type")
