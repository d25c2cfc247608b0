"""The gRPC server of one worker process.

It implements Feast's ``feast.serving.ServingService`` (``GetOnlineFeatures`` and
``GetFeastServingInfo``) so Feast's generated stubs work unchanged, Frost's
``frost.serving.v1.FrostServing`` for what Feast's API cannot carry, ``grpc.health.v1``
(NOT_SERVING while Redis does not answer) and server reflection.

``GetOnlineFeatures`` is registered with no request or response serializer: the handler
parses the request itself (so a malformed one is INVALID_ARGUMENT, not INTERNAL) and
returns the response already framed (``serving._lookup``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
from feast.protos.feast.serving import ServingService_pb2 as feast_serving
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from frost.errors import BadInput, FrostError, ServiceStartError
from frost.feature_log import LogRecord, LogTarget, LogWriter, ProcessLogWriter
from frost.online import AsyncRedis
from frost.proto import frost_serving_pb2 as frost_pb
from frost.proto import frost_serving_pb2_grpc as frost_grpc
from frost.serving._admission import Admission, Denied, Limited
from frost.serving._config import ClientSpec, ServeSettings
from frost.serving._limits import Limiter, LimitState
from frost.serving._lookup import Counts, entity_columns, entity_rows, lookup, request_columns
from frost.serving._metrics import ServerMetrics
from frost.serving._plan import LookupPlan
from frost.serving._registry import RegistryWatcher, Snapshot

__all__ = ["FeatureServer", "build_server"]

log = logging.getLogger("frost.serve")

FEAST_SERVICE = "feast.serving.ServingService"
FROST_SERVICE = "frost.serving.v1.FrostServing"
_AGE_SAMPLE = 1 / 16  # share of requests whose value ages feed the staleness histogram
_HEALTH_INTERVAL = 1.0
_DEADLINE_MARGIN = 0.010  # answer this long before the client's deadline


class FeatureServer:
    """Answers feature lookups from one Redis with one registry snapshot at a time."""

    def __init__(  # noqa: PLR0917 - built in one place
        self,
        settings: ServeSettings,
        watcher: RegistryWatcher,
        redis: AsyncRedis,
        metrics: ServerMetrics,
        log_writer: LogWriter | ProcessLogWriter | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self._log = log_writer
        self._watcher = watcher
        self._redis = redis
        self._metrics = metrics
        self._limiter = limiter or Limiter(LimitState.create(), 0)
        self.apply(settings)
        # Request ids of logged lookups the caller gave none for: random per worker, then a
        # counter (unique across workers and restarts, cheaper than a uuid per request).
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        self._requests = 0
        self.health = health_aio.HealthServicer()
        self._draining = False

    @property
    def settings(self) -> ServeSettings:
        return self._settings

    def apply(self, settings: ServeSettings) -> None:
        """Use ``settings`` from the next request on (start, and SIGHUP reloads): tokens,
        services, limits, caps and timeouts. One assignment each: a request in flight keeps
        the admission it started with."""
        self._limiter.forget_plans()
        self._admission = Admission(settings, self._limiter)
        self._timeout = min(settings.redis_timeout_ms / 1000, self._redis.config.socket_timeout)
        self._settings = settings

    # -- GetOnlineFeatures ------------------------------------------------------------------

    async def get_online_features(self, raw: bytes, context: Any) -> bytes:
        started = time.perf_counter()
        label, client, code = "unknown", "anonymous", grpc.StatusCode.OK
        rows = features = 0
        wait = self._timeout
        settings, admission = self._settings, self._admission
        ticket = None
        try:
            _check_size(raw, settings)  # before any parsing
            spec = admission.authenticate(context)
            client = spec.name if spec else client
            request = _parse(raw)
            snapshot = self._watcher.snapshot
            service = _service_of(request)
            admission.may_use(spec, service)
            plan = self._plan(request, snapshot, settings, spec, admission)
            label = plan.label
            rows = entity_rows(request, plan, settings.max_entities_per_request)
            ticket = admission.admit(spec, plan.service, rows)
            columns = entity_columns(request, plan)
            features = rows * plan.feature_count
            sample = random.random() < _AGE_SAMPLE
            wait = self._wait_limit(context)
            target = _sampled(snapshot, plan)
            now = time.time()
            async with asyncio.timeout(wait):
                response = await lookup(
                    self._redis, plan, request, columns, now, self._tally, sample
                )
            if target is not None:
                self._log_lookup(target, plan, request, columns, response, client, now, context)
            return response
        except Denied as exc:
            code = exc.code
            if isinstance(exc, Limited):
                self._metrics.count_limited(exc.client, exc.limit)
            context.set_trailing_metadata(exc.trailing_metadata())
            await context.abort(code, str(exc))
        except FrostError as exc:
            code = getattr(grpc.StatusCode, exc.grpc_status)
            await context.abort(code, str(exc))
        except TimeoutError:
            code = grpc.StatusCode.UNAVAILABLE
            await context.abort(
                code, f"{self._redis.where} did not answer within {wait * 1000:.0f} ms"
            )
        finally:
            if ticket is not None:
                ticket.release()
            self._metrics.latency.labels(label).observe(time.perf_counter() - started)
            served_ok = code == grpc.StatusCode.OK
            self._metrics.count_request(
                label, client, code.name, rows, features if served_ok else 0
            )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    def _tally(self) -> Counts:
        return self._metrics.pending

    def _log_lookup(  # noqa: PLR0917 - one call site
        self,
        target: LogTarget,
        plan: LookupPlan,
        request: Any,
        columns: dict[str, list[Any]],
        response: bytes,
        client: str,
        now: float,
        context: Any,
    ) -> None:
        """Queue a served lookup for the log; its request id goes back to the caller in
        the trailing metadata ``x-request-id`` (the caller's own, when it sent one)."""
        request_id = None
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id" and value:
                request_id = str(value)[:128]
                break
        if request_id is None:
            self._requests += 1
            request_id = f"{self._id_prefix}{self._requests:x}"
        rows = len(next(iter(columns.values())))
        logged = dict(columns)
        if plan.request_fields:
            logged.update(request_columns(request, plan, rows))
        record = LogRecord(plan.label, request_id, client, now, rows, logged, response)
        if self._log is not None:
            self._log.submit(target, record)
        context.set_trailing_metadata((("x-request-id", request_id),))

    def _plan(
        self,
        request: Any,
        snapshot: Snapshot,
        settings: ServeSettings,
        spec: ClientSpec | None,
        admission: Admission,
    ) -> LookupPlan:
        kind = request.WhichOneof("kind")
        if kind == "feature_service":
            name = request.feature_service
            return snapshot.service_plan(name, lambda s: admission.visible(spec, s))
        if kind == "features":
            refs = request.features.val
            if len(refs) > settings.max_features_per_request:
                raise BadInput(
                    f"the request names {len(refs)} features; this server's cap is "
                    f"{settings.max_features_per_request} (max_features_per_request)"
                )
            return snapshot.features_plan(tuple(refs))
        raise BadInput("the request names no features: set feature_service or features")

    def _wait_limit(self, context: Any) -> float:
        """How long a request may wait for Redis: ``redis_timeout_ms`` (itself at most the
        connection string's ``socket_timeout``), and no longer than the caller's deadline."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._timeout
        return max(min(self._timeout, float(remaining) - _DEADLINE_MARGIN), 0.0)

    # -- other methods ----------------------------------------------------------------------

    async def get_serving_info(self, request: Any, context: Any) -> Any:
        from feast import __version__

        return feast_serving.GetFeastServingInfoResponse(version=f"frost (feast {__version__})")

    async def list_feature_services(self, request: Any, context: Any) -> Any:
        try:
            spec = self._admission.authenticate(context)
        except Denied as exc:
            context.set_trailing_metadata(exc.trailing_metadata())
            await context.abort(exc.code, str(exc))
        snapshot = self._watcher.snapshot
        response = frost_pb.ListFeatureServicesResponse()
        for name in sorted(snapshot.services):
            if spec is not None and not spec.may_use(name):
                continue
            _describe_service(response.services.add(), snapshot, name)
        return response

    async def set_health(self, status: int) -> None:
        for service in ("", FEAST_SERVICE, FROST_SERVICE):
            await self.health.set(service, status)

    async def drain(self) -> None:
        """Health NOT_SERVING from now on (the server is stopping); calls are still served."""
        self._draining = True
        await self.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def watch_redis(self) -> None:
        """Keep the health status and ``frost_serving_redis_up`` in step with Redis."""
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        last = None
        while True:
            try:
                async with asyncio.timeout(max(self._timeout, _HEALTH_INTERVAL)):
                    await self._redis.ping()
                status = serving
            except (FrostError, TimeoutError, OSError) as exc:
                status = not_serving
                if last != not_serving:
                    log.warning("Redis is not answering, health is NOT_SERVING: %s", exc)
                self._redis.reset()  # a hung connection must not hold later requests
            if status != last and not self._draining:
                await self.set_health(status)
                self._metrics.redis_up.set(1 if status == serving else 0)
                if status == serving and last is not None:
                    log.info("Redis answers again, health is SERVING")
                last = status
            snapshot = self._watcher.snapshot
            self._metrics.feature_services.set(len(snapshot.plans))
            self._metrics.describe_views(
                snapshot.materialized_until,
                {
                    name: bound
                    for name, contract in snapshot.contracts.items()
                    if (bound := contract.freshness.max_staleness_seconds) is not None
                },
            )
            self._metrics.flush()
            await asyncio.sleep(_HEALTH_INTERVAL)


def _parse(raw: bytes) -> Any:
    try:
        return feast_serving.GetOnlineFeaturesRequest.FromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BadInput(f"the request is not a valid GetOnlineFeaturesRequest: {exc}") from exc


def _check_size(raw: bytes, settings: ServeSettings) -> None:
    if len(raw) > settings.request_bytes_cap:
        raise BadInput(
            f"the request is {len(raw):,} bytes; this server's cap is "
            f"{settings.request_bytes_cap:,} (max_request_bytes): split the request"
        )


def _sampled(snapshot: Snapshot, plan: LookupPlan) -> LogTarget | None:
    """Where to log this lookup, when its service logs and it is sampled."""
    target = snapshot.log_targets.get(plan.service) if plan.service else None
    if target is None or target.sample_rate >= 1.0 or random.random() < target.sample_rate:
        return target
    return None


def _service_of(request: Any) -> str | None:
    return request.feature_service if request.WhichOneof("kind") == "feature_service" else None


def _describe_service(out: Any, snapshot: Any, name: str) -> None:
    spec = snapshot.services[name]
    out.name = name
    out.entity_keys.extend(snapshot.plans[name].join_keys)
    out.tags.update(dict(spec.tags))
    for view, features in spec.views:
        contract = snapshot.contracts.get(view.name)
        age = contract.freshness.max_staleness_seconds if contract else None
        for feature in features:
            info = out.features.add(
                feature_view=view.name,
                name=feature,
                type=str(view.feature(feature).type),
                max_staleness_seconds=age or 0.0,
            )
            rule = contract.fields.get(feature) if contract else None
            if rule is None:
                continue
            if rule.min is not None:
                info.min = float(rule.min)
            if rule.max is not None:
                info.max = float(rule.max)
            info.not_null = rule.not_null
            if rule.allowed_values is not None:
                import json

                info.allowed_values.extend(json.dumps(v) for v in rule.allowed_values)


def build_server(
    server: FeatureServer, settings: ServeSettings, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Server:
    """A grpc.aio server with every service registered and the port bound."""
    from grpc_reflection.v1alpha import reflection

    age_ms = int(settings.max_connection_age_seconds * 1000)
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", 16 << 20),
            # Connections are closed gracefully (GOAWAY: calls in flight finish, new ones go
            # to a new connection) at this age, so clients move off a stopping worker.
            ("grpc.max_connection_age_ms", age_ms),
            ("grpc.max_connection_age_grace_ms", int(settings.shutdown_timeout_seconds * 1000)),
            *options,
        ]
    )
    feast_handlers = {
        "GetOnlineFeatures": grpc.unary_unary_rpc_method_handler(server.get_online_features),
        "GetFeastServingInfo": grpc.unary_unary_rpc_method_handler(
            server.get_serving_info,
            request_deserializer=feast_serving.GetFeastServingInfoRequest.FromString,
            response_serializer=feast_serving.GetFeastServingInfoResponse.SerializeToString,
        ),
    }
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(FEAST_SERVICE, feast_handlers),)
    )
    frost_grpc.add_FrostServingServicer_to_server(_FrostServicer(server), grpc_server)
    health_pb2_grpc.add_HealthServicer_to_server(server.health, grpc_server)
    reflection.enable_server_reflection(
        (
            FEAST_SERVICE,
            FROST_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        grpc_server,
    )
    address = f"{settings.host}:{settings.port}"
    if settings.tls is not None:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls.key.read_bytes(), settings.tls.cert.read_bytes())]
        )
        bound = grpc_server.add_secure_port(address, credentials)
    else:
        bound = grpc_server.add_insecure_port(address)
    if bound == 0:
        raise ServiceStartError(f"frost serve cannot listen on {address} (port in use?)")
    return grpc_server


class _FrostServicer(frost_grpc.FrostServingServicer):
    def __init__(self, server: FeatureServer) -> None:
        self._server = server

    async def ListFeatureServices(self, request: Any, context: Any) -> Any:
        return await self._server.list_feature_services(request, context)
