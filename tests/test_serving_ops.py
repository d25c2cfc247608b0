"""Running the server: tokens and TLS, metrics, several workers, registry refresh, the
typed client, reflection, bad settings, and a fuzz test of malformed requests."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from feast.protos.feast.types.Value_pb2 import Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frost.client import FeatureClient, ServingError
from frost.online import FieldStatus
from frost.repo import FeatureRepo
from frost.services import RedisServer
from tests.backends import certificate
from tests.serving_support import Server, entity_ids, make_served_repo, stub
from tests.serving_support import request as make_request

TOKENS = {"ranking": "ranking-token-0123456789", "ops": "ops-token-0123456789abcdef"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureRepo]:
    with RedisServer().start() as backend:
        yield make_served_repo(tmp_path_factory.mktemp("ops"), backend.connection_string)


@pytest.fixture(scope="module")
def server(repo: FeatureRepo) -> Iterator[Server]:
    config = {"registry_refresh_seconds": 0.5}
    with Server(repo, config=config) as running:
        yield running


def test_tokens_and_tls(repo: FeatureRepo, tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    config = {
        "tls": {"cert": str(cert), "key": str(key)},
        "clients": [
            {"name": "ranking", "token": TOKENS["ranking"], "services": ["recommendation"]},
            {"name": "ops", "token": TOKENS["ops"], "services": ["*"]},
        ],
    }
    users = entity_ids(repo, "user_profile", "user_id", 3)
    server = Server(repo, config=config)
    server.wait_health = lambda *_a, **_k: None  # type: ignore[method-assign]  # TLS port
    with server:
        _wait_tls(server.target, cert)
        anonymous = FeatureClient(server.target, tls_root_cert=cert)
        with anonymous, pytest.raises(ServingError, match="UNAUTHENTICATED: this server needs"):
            anonymous.get("churn_prediction", {"user_id": users})
        stranger = FeatureClient(server.target, token="x" * 20, tls_root_cert=cert)
        with stranger, pytest.raises(ServingError, match="UNAUTHENTICATED: the bearer token"):
            stranger.get("churn_prediction", {"user_id": users})
        with FeatureClient(server.target, token=TOKENS["ranking"], tls_root_cert=cert) as ranking:
            with pytest.raises(ServingError, match="PERMISSION_DENIED: client 'ranking'"):
                ranking.get("churn_prediction", {"user_id": users})
            with pytest.raises(ServingError, match=r"PERMISSION_DENIED.*feature lists"):
                ranking.get(features=["user_profile:level"], entities={"user_id": users})
            result = ranking.get("recommendation", {"user_id": users, "experience_id": [1, 1, 1]})
            assert len(result) == 3
            assert [s.name for s in ranking.list_services()] == ["recommendation"]
        with FeatureClient(server.target, token=TOKENS["ops"], tls_root_cert=cert) as ops:
            assert len(ops.get("churn_prediction", {"user_id": users})) == 3
            assert len(ops.list_services()) == 5
        metrics = _scrape(server.metrics_port, lambda text: 'client="ranking"' in text)
        assert 'code="PERMISSION_DENIED"' in metrics and 'client="ops"' in metrics
        # the plaintext port is not open: TLS only
        with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError):
            stub_call = channel.unary_unary("/grpc.health.v1.Health/Check")
            stub_call(b"", timeout=2)


def _wait_tls(target: str, cert: Path) -> None:
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    with grpc.secure_channel(target, credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)


def _scrape(port: int, ready: Any, timeout: float = 10) -> str:
    """The metrics page, once ``ready(text)`` holds (workers flush once a second)."""
    import time

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
        if ready(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"metrics never showed what was expected:\n{text[-2000:]}")


def test_typed_client_rows_dicts_and_dataframe(server: Server, repo: FeatureRepo) -> None:
    users = entity_ids(repo, "user_activity_7d", "user_id", 4)
    with FeatureClient(server.target) as client:
        assert client.health() == "SERVING"
        result = client.get("churn_prediction", {"user_id": [*users, 987_654_321]})
        dicts = result.to_dicts()
        assert [d["user_id"] for d in dicts] == [*users, 987_654_321]
        rows = result.rows()
        assert rows[-1].status("level") is FieldStatus.NOT_FOUND and rows[-1]["level"] is None
        assert rows[0].status("sessions_7d") in (FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE)
        assert rows[0].event_times["sessions_7d"] is not None
        frame = result.to_pandas()
        assert list(frame.columns[:3]) == ["user_id", "user_id__status", "country"]
        assert frame["level__status"].iloc[-1] == "NOT_FOUND"
        (info,) = [s for s in client.list_services() if s.name == "recommendation"]
        level = next(f for f in info.features if f.name == "level")
        assert (level.feature_view, level.min, level.max, level.type) == (
            "user_profile", 1, 500, "Int32",
        )  # fmt: skip
        assert (
            next(f for f in info.features if f.name == "country").max_staleness_seconds == 7 * 86400
        )
        assert sorted(info.entity_keys) == ["experience_id", "user_id"]


def test_metrics_per_service_view_status_and_client(server: Server, repo: FeatureRepo) -> None:
    users = entity_ids(repo, "user_profile", "user_id", 5)
    channel, client = stub(server.target)
    with channel:
        for _ in range(3):
            client.GetOnlineFeatures(make_request("churn_prediction", {"user_id": users}))
    text = _scrape(
        server.metrics_port,
        lambda t: (
            'frost_serving_request_seconds_count{service="churn_prediction"}' in t
            and 'frost_serving_values_total{feature_view="user_profile"' in t
        ),
    )
    assert "frost_serving_values_total{" in text, text
    assert (
        'frost_serving_requests_total{client="anonymous",code="OK",service="churn_prediction"}'
        in text
    )
    assert "frost_serving_redis_up 1.0" in text
    assert "frost_serving_feature_services 5.0" in text
    assert 'frost_feature_view_max_staleness_seconds{feature_view="user_profile"} 604800.0' in text


def test_registry_changes_are_served_without_a_restart(server: Server, repo: FeatureRepo) -> None:
    from feast import FeatureService

    store = repo.feature_store
    profile = store.get_feature_view("user_profile")
    store.apply([FeatureService(name="profile_only", features=[profile[["level"]]])])
    users = entity_ids(repo, "user_profile", "user_id", 2)
    import time

    deadline = time.monotonic() + 15
    with FeatureClient(server.target) as client:
        while True:
            try:
                result = client.get("profile_only", {"user_id": users})
                break
            except ServingError as exc:
                assert exc.code == "NOT_FOUND"
                assert time.monotonic() < deadline, "the new service was never served"
                time.sleep(0.2)
    assert result.names == ["user_id", "level"]


def test_reflection_lists_the_services(server: Server) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"feast.serving.ServingService", "frost.serving.v1.FrostServing"} <= names
    assert "grpc.health.v1.Health" in names


def test_two_workers_share_the_port(repo: FeatureRepo) -> None:
    users = entity_ids(repo, "user_profile", "user_id", 3)
    with Server(repo, "--workers", "2") as server:
        assert server.process is not None
        children = psutil.Process(server.process.pid).children()
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in children]
        for _ in range(8):  # new connections; the kernel spreads them over both workers
            with FeatureClient(server.target) as client:
                assert len(client.get("churn_prediction", {"user_id": users})) == 3
        _scrape(
            server.metrics_port,
            lambda t: (
                'requests_total{client="anonymous",code="OK",service="churn_prediction"} 8.0' in t
            ),
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"workers": 0}, "workers must be at least 1"),
        ({"prot": 1}, "unknown setting(s) prot"),
        ({"clients": [{"name": "a", "token": "short", "services": []}]}, "at least 16"),
        ({"tls": {"cert": "missing.pem", "key": "missing.key"}}, "does not exist"),
        ("port: 6566\nworkers: [2,\n", "line 3, column 1: expected the node content"),
    ],
)
def test_bad_settings_fail_with_one_line(
    repo: FeatureRepo, tmp_path: Path, config: dict[str, Any] | str, message: str
) -> None:
    import yaml

    path = tmp_path / "serve.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "frost", "--repo", str(repo.path), "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    error = result.stderr[result.stderr.index("frost: error: ") :]
    assert len(error.strip().splitlines()) == 1, result.stderr
    assert message in error and str(path) in error


_VALUES = st.one_of(
    st.builds(Value),
    st.builds(Value, int64_val=st.integers(-(2**63), 2**63 - 1)),
    st.builds(Value, int32_val=st.integers(-(2**31), 2**31 - 1)),
    st.builds(Value, string_val=st.text(max_size=8)),
    st.builds(Value, double_val=st.floats()),
    st.builds(Value, bytes_val=st.binary(max_size=8)),
)
_NAMES = st.sampled_from(["user_id", "experience_id", "", "user", "x" * 40])
_FEATURES = st.lists(
    st.sampled_from(
        ["user_profile:level", "user_profile:", ":level", "nope", "experience_stats:genre", "a:b:c"]
    ),
    max_size=4,
)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))  # not even a protobuf
    message = make_request(
        draw(st.none() | st.sampled_from(["churn_prediction", "matchmaking", "", "nope"])),
        full_feature_names=draw(st.booleans()),
    )
    if message.feature_service == "" and draw(st.booleans()):
        message.features.val.extend(draw(_FEATURES))
    for name in draw(st.lists(_NAMES, max_size=3, unique=True)):
        message.entities[name].val.extend(draw(st.lists(_VALUES, max_size=5)))
    return bytes(message.SerializeToString())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_requests())
def test_fuzzed_requests_never_break_the_server(server: Server, payload: bytes) -> None:
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary("/feast.serving.ServingService/GetOnlineFeatures")
        try:
            call(payload, timeout=5)
        except grpc.RpcError as exc:
            assert exc.code().name in {"INVALID_ARGUMENT", "NOT_FOUND"}, (exc.code(), exc.details())
            assert exc.details()
    assert server.process is not None and server.process.poll() is None
