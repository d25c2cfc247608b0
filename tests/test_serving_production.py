"""Serving in production: the port is one server's, cheap checks come first, per-client
limits hold their rates (across workers) without slowing other clients, errors reveal only
what a token may see, and a server drains, reloads and rolls its workers without failing a
request of a client that retries on UNAVAILABLE (gRPC's standard retry policy)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import yaml
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

from frost.repo import FeatureRepo
from frost.services import RedisServer, free_port
from frost.serving._limits import LimitState
from tests.serving_support import (
    Load,
    Server,
    entity_ids,
    grpc_body,
    h2load,
    make_served_repo,
    metric,
    request,
    stub,
)

TOKENS = {
    "ranking": "ranking-token-0123456789",
    "ops": "ops-token-0123456789abcdef",
    "batchy": "batchy-token-0123456789ab",
    "narrow": "narrow-token-0123456789ab",
}
BEARER = {name: (("authorization", f"Bearer {token}"),) for name, token in TOKENS.items()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureRepo]:
    with RedisServer().start() as backend:
        yield make_served_repo(tmp_path_factory.mktemp("production"), backend.connection_string)


@pytest.fixture(scope="module")
def users(repo: FeatureRepo) -> list[int]:
    return entity_ids(repo, "user_profile", "user_id", 100)


def _clients(**limits: dict[str, Any]) -> list[dict[str, Any]]:
    services = {"ranking": ["*"], "ops": ["*"], "batchy": ["*"], "narrow": ["recommendation"]}
    return [
        {"name": name, "token": TOKENS[name], "services": services[name], **limits.get(name, {})}
        for name in TOKENS
    ]


def _serve(repo: FeatureRepo, *args: str, **config: Any) -> Server:
    return Server(repo, *args, config=config)


def _command(repo: FeatureRepo, *args: str) -> list[str]:
    return [sys.executable, "-m", "frost", "--repo", str(repo.path), "serve", *args]


# -- the port is one server's ----------------------------------------------------------------


def test_a_second_server_on_the_port_fails_at_once_naming_it(
    repo: FeatureRepo, tmp_path: Path
) -> None:
    # The second server's registry does not load: the port is claimed before anything is.
    other = FeatureRepo(tmp_path)
    shutil.copy(repo.path / "feature_store.yaml", other.path)
    (other.path / "data").mkdir()
    (other.path / "data" / "registry.db").write_bytes(b"not a registry")
    with _serve(repo, clients=_clients()) as first:
        started = time.monotonic()
        second = subprocess.run(
            _command(other, "--port", str(first.port), "--metrics-port", "0"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"port {first.port} is already served by another frost serve" in second.stderr
        assert "Traceback" not in second.stderr
        assert time.monotonic() - started < 30
        taken = subprocess.run(
            _command(other, "--port", str(free_port()), "--metrics-port", str(first.metrics_port)),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert taken.returncode == 2, taken.stderr
        assert f"metrics port {first.metrics_port}" in taken.stderr
        assert "Traceback" not in taken.stderr
        errors = [line for line in taken.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1, taken.stderr
        # the first server still answers only its own callers: a call without a token fails
        channel, client = stub(first.target)
        with channel, pytest.raises(grpc.RpcError) as refused:
            client.GetOnlineFeatures(request("churn_prediction", {"user_id": [1]}), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_serving_is_said_only_once_the_port_answers(repo: FeatureRepo, users: list[int]) -> None:
    port = free_port()
    process = subprocess.Popen(
        _command(repo, "--port", str(port), "--metrics-port", "0", "--workers", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("frost serve:"), line
        channel, client = stub(f"127.0.0.1:{port}")
        with channel:  # at once: no wait, no retry
            reply = client.GetOnlineFeatures(
                request("churn_prediction", {"user_id": users[:2]}), timeout=5
            )
        assert len(reply.results) > 1
    finally:
        process.terminate()
        process.wait(60)
    assert process.returncode == 0


# -- cheap checks first, and errors that reveal nothing --------------------------------------


def test_an_oversized_request_is_refused_at_once_and_delays_no_one(
    repo: FeatureRepo, users: list[int], tmp_path: Path
) -> None:
    huge = request("churn_prediction")
    huge.entities["user_id"].CopyFrom(
        RepeatedValue(val=[Value(int64_val=i) for i in range(700_000)])
    )
    over_cap = request("churn_prediction", {"user_id": list(range(1500))})
    small = request("churn_prediction", {"user_id": users[:1]})
    with _serve(repo) as server:
        channel, client = stub(server.target)
        with channel:
            for message, needle in ((huge, "max_request_bytes"), (over_cap, "max_entities")):
                started = time.perf_counter()
                with pytest.raises(grpc.RpcError) as refused:
                    client.GetOnlineFeatures(message, timeout=10)
                took = time.perf_counter() - started
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert needle in refused.value.details()
                assert took < 0.5, took  # the transfer included
            # small requests on the same worker while huge ones keep coming (from h2load, a
            # process of its own: building them here would hold this process's GIL)
            body = grpc_body(huge, tmp_path / "huge.bin")
            refused_before = metric(server, "frost_serving_requests_total", code="INVALID_ARGUMENT")
            flood = h2load(server.target, body, 4, clients=2, streams=1)
            try:
                time.sleep(0.5)
                latencies = []
                for _ in range(50):
                    started = time.perf_counter()
                    client.GetOnlineFeatures(small, timeout=5)
                    latencies.append(time.perf_counter() - started)
            finally:
                flood.wait()
            time.sleep(1.5)  # the workers' counts are flushed every second
            refused = metric(server, "frost_serving_requests_total", code="INVALID_ARGUMENT")
            assert refused - refused_before > 10
            assert sorted(latencies)[-3] < 0.05, sorted(latencies)[-5:]
            # one worker: a rolling restart is refused with a line, and serving goes on
            assert server.process is not None
            server.process.send_signal(signal.SIGUSR2)
            _wait(lambda: "needs --workers 2" in server.log_tail(), 10, "no SIGUSR2 line", server)
            client.GetOnlineFeatures(small, timeout=5)


def test_errors_name_only_what_the_token_may_see(repo: FeatureRepo) -> None:
    """... and calls without a token, taken as 'anonymous', have their own services and
    limits."""
    clients = _clients()
    clients[3]["services"] = ["recommendation", "retired_service"]
    anonymous = {"services": ["recommendation"], "requests_per_second": 20, "burst": 2}
    with _serve(repo, clients=clients, anonymous=anonymous) as server:
        channel, client = stub(server.target)
        with channel:

            def refused(name: str, who: str) -> grpc.RpcError:
                with pytest.raises(grpc.RpcError) as caught:
                    message = request(name, {"user_id": [1]})
                    client.GetOnlineFeatures(message, timeout=5, metadata=BEARER[who])
                return caught.value

            denied = refused("churn_prediction", "narrow")
            assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
            unknown = refused("retired_service", "narrow")
            assert unknown.code() == grpc.StatusCode.NOT_FOUND
            assert unknown.details().endswith("the services you may use here: recommendation")
            everything = refused("no_such_service", "ops")
            assert "churn_prediction" in everything.details()
            tokenless = request("recommendation", {"user_id": [1], "experience_id": [1]})
            codes = []
            for _ in range(30):
                try:
                    client.GetOnlineFeatures(tokenless, timeout=5)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
                    details = exc.details()
            assert codes.count(grpc.StatusCode.OK) >= 2
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
            assert "client 'anonymous' is over its limit requests_per_second (20)" in details
            with pytest.raises(grpc.RpcError) as other:
                client.GetOnlineFeatures(request("churn_prediction", {"user_id": [1]}), timeout=5)
            assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_failed_tokens_are_limited_per_peer(repo: FeatureRepo) -> None:
    config = {"clients": _clients(), "auth_failures_per_second": 2, "auth_failure_burst": 5}
    with _serve(repo, **config) as server:
        channel, client = stub(server.target)
        codes = []
        with channel:
            for attempt in range(20):
                wrong = (("authorization", f"Bearer wrong-token-{attempt:012d}"),)
                try:
                    client.GetOnlineFeatures(request("churn_prediction"), timeout=5, metadata=wrong)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
                    trailers = dict(exc.trailing_metadata() or ())
            assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5
            assert set(codes[6:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
            assert int(trailers["grpc-retry-pushback-ms"]) > 0
            time.sleep(0.6)  # a token back for this peer
            with pytest.raises(grpc.RpcError) as again:
                client.GetOnlineFeatures(request("churn_prediction"), timeout=5, metadata=wrong)
            assert again.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- per-client limits --------------------------------------------------------------------------


def _ok_rate(server: Server, client: str, window: float, run: Any) -> float:
    before = metric(server, "frost_serving_requests_total", client=client, code="OK")
    run()
    time.sleep(1.5)  # workers flush their counts every second
    after = metric(server, "frost_serving_requests_total", client=client, code="OK")
    return (after - before) / window


def test_limits_hold_their_rates_across_workers(
    repo: FeatureRepo, users: list[int], tmp_path: Path
) -> None:
    limits = {
        "ranking": {"requests_per_second": 100, "burst": 5},
        "batchy": {"entities_per_second": 2000, "burst": 2},
        "narrow": {"max_concurrent_requests": 1},
    }
    one = grpc_body(request("churn_prediction", {"user_id": users[:1]}), tmp_path / "one.bin")
    twenty = grpc_body(request("churn_prediction", {"user_id": users[:20]}), tmp_path / "20.bin")
    seconds = 5.0
    with _serve(repo, "--workers", "2", clients=_clients(**limits)) as server:
        # four connections each: the kernel spreads them over both workers
        auth = [f"authorization: Bearer {TOKENS['ranking']}"]
        rate = _ok_rate(
            server, "ranking", seconds,
            lambda: h2load(server.target, one, seconds, clients=4, headers=auth).wait(),
        )  # fmt: skip
        assert abs(rate - 100) <= 10, rate
        auth = [f"authorization: Bearer {TOKENS['batchy']}"]
        rate = _ok_rate(
            server, "batchy", seconds,
            lambda: h2load(server.target, twenty, seconds, clients=4, headers=auth).wait(),
        )  # fmt: skip
        assert abs(rate * 20 - 2000) <= 200, rate * 20
        limited = metric(
            server, "frost_serving_limited_requests_total", client="ranking",
            limit="requests_per_second",
        )  # fmt: skip
        assert limited > 100
        channel, client = stub(server.target)
        with channel, pytest.raises(grpc.RpcError) as over:
            for _ in range(200):
                client.GetOnlineFeatures(
                    request("churn_prediction", {"user_id": users[:1]}),
                    timeout=5,
                    metadata=BEARER["ranking"],
                )
        assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "client 'ranking' is over its limit requests_per_second (100)" in (
            over.value.details()
        )
        assert int(dict(over.value.trailing_metadata())["grpc-retry-pushback-ms"]) >= 1
        # one request in flight at a time for 'narrow': eight threads get refusals
        message = request("recommendation", {"user_id": users, "experience_id": [1] * 100})
        with Load(server.target, message, threads=8, metadata=BEARER["narrow"]) as load:
            load.wait_for(200)
        codes = {code for _, _, code in load.outcomes}
        assert codes == {"OK", "RESOURCE_EXHAUSTED"}, codes
        # the workers move their counts into the metrics once a second: polled
        deadline = time.monotonic() + 15
        while True:
            usage = subprocess.run(
                [sys.executable, "-m", "frost", "usage", "--metrics",
                 f"http://127.0.0.1:{server.metrics_port}/metrics"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout  # fmt: skip
            if "max_concurrent_requests" in usage or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "ranking" in usage and "requests_per_second" in usage, usage
        assert "max_concurrent_requests" in usage, usage


def _hold(state: LimitState, held: Any) -> None:
    """A stand-in worker that takes the limits lock and keeps it until it is killed."""
    with state.lock:
        held.set()
        time.sleep(600)


def test_a_worker_killed_holding_the_limits_lock_blocks_no_one() -> None:
    context = multiprocessing.get_context("spawn")
    state = LimitState.create(context, 2)
    held = context.Event()
    holder = context.Process(target=_hold, args=(state, held))
    holder.start()
    taken = threading.Event()
    try:
        assert held.wait(60), "the holder never took the lock"
        threading.Thread(target=lambda: (state.clear_slot(1), taken.set()), daemon=True).start()
        assert not taken.wait(0.5), "the lock excluded no one"
        os.kill(holder.pid, signal.SIGKILL)  # as the OOM killer would, mid-request
        assert taken.wait(10), "the lock outlived its holder: every worker would wait for ever"
    finally:
        holder.kill()
        holder.join()
        state.remove()


def test_a_limited_client_does_not_slow_another(
    repo: FeatureRepo, users: list[int], tmp_path: Path
) -> None:
    limits = {"ranking": {"requests_per_second": 50, "burst": 5}}
    body = grpc_body(request("churn_prediction", {"user_id": users[:1]}), tmp_path / "one.bin")
    message = request("churn_prediction", {"user_id": users[:10]})
    with _serve(repo, clients=_clients(**limits)) as server:

        def p99_of_ops() -> float:
            with Load(server.target, message, threads=2, metadata=BEARER["ops"], pace=0.01) as load:
                time.sleep(6)
            latencies = sorted(seconds for _, seconds, code in load.outcomes if code == "OK")
            assert not load.failures()
            return latencies[int(len(latencies) * 0.99)]

        p99_of_ops()  # warm up
        quiet = p99_of_ops()
        auth = [f"authorization: Bearer {TOKENS['ranking']}"]
        noisy = h2load(server.target, body, 7, clients=2, streams=1, rps=250, headers=auth)
        try:
            loud = p99_of_ops()
        finally:
            noisy.wait()
        refused = metric(server, "frost_serving_limited_requests_total", client="ranking")
        assert refused > 500  # the noisy client was mostly refused
        assert loud <= 1.2 * quiet + 0.002, (quiet, loud)


# -- drain, reload, roll --------------------------------------------------------------------------


def _workers(server: Server) -> set[int]:
    """The pids of the server's live worker processes."""
    assert server.process is not None
    found = set()
    for child in psutil.Process(server.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:  # gone meanwhile
            continue
    return found


def _wait(condition: Any, timeout: float, what: str, server: Server | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = "" if server is None else f"; workers {_workers(server)}\n{server.log_tail()}"
            raise AssertionError(f"{what}{tail}")
        time.sleep(0.1)


def test_sigterm_drains_and_exits_0_under_load(repo: FeatureRepo, users: list[int]) -> None:
    message = request("churn_prediction", {"user_id": users[:5]})
    server = _serve(repo, "--workers", "2", drain_seconds=1.0).start()
    assert server.process is not None
    with Load(server.target, message, threads=4) as load:
        load.wait_for(200)
        server.process.send_signal(signal.SIGTERM)
        server.wait_health("NOT_SERVING", timeout=5)  # at once, while calls are still taken
        sent = len(load.outcomes)
        load.stop()  # a load balancer moves away from a server that is NOT_SERVING
    assert server.process.wait(60) == 0
    assert len(load.outcomes) >= sent
    assert load.failures() == [], load.failures()[:5]


def test_sighup_reloads_tokens_and_keeps_the_old_settings_on_a_bad_file(
    repo: FeatureRepo, users: list[int]
) -> None:
    clients = _clients()
    new_client = {"name": "newcomer", "token": "newcomer-token-0123456789", "services": ["*"]}
    message = request("churn_prediction", {"user_id": users[:3]})
    with _serve(repo, "--workers", "2", clients=clients[:1]) as server:
        assert server.process is not None
        config = server.repo.path / f"serve-{server.port}.yaml"
        newcomer = (("authorization", f"Bearer {new_client['token']}"),)
        channel, client = stub(server.target)
        with channel, Load(server.target, message, metadata=BEARER["ranking"]) as load:
            with pytest.raises(grpc.RpcError):
                client.GetOnlineFeatures(message, timeout=5, metadata=newcomer)
            config.write_text(yaml.safe_dump({"clients": [*clients[:1], new_client]}))
            server.process.send_signal(signal.SIGHUP)
            _wait(
                lambda: _answers(client, message, newcomer),
                20,
                "the new token never worked",
                server,
            )
            config.write_text("clients: [{name: broken, token: short, services: []}]")
            server.process.send_signal(signal.SIGHUP)
            _wait(lambda: "config reload rejected" in server.log_tail(), 20, "no rejection", server)
            assert _answers(client, message, newcomer)  # the settings in use were kept
            load.wait_for(len(load.outcomes) + 100)
        assert load.failures() == [], load.failures()[:5]
        assert "at least 16 characters" in server.log_tail()


def _answers(client: Any, message: Any, metadata: Any) -> bool:
    try:
        client.GetOnlineFeatures(message, timeout=5, metadata=metadata)
    except grpc.RpcError:
        return False
    return True


def _restarts(server: Server) -> int:
    return server.log.read_text().count("exited (code -9), restarting it")


def test_workers_killed_at_start_or_later_or_rolled_lose_no_request(
    repo: FeatureRepo, users: list[int]
) -> None:
    message = request("churn_prediction", {"user_id": users[:5]})
    config = {"drain_seconds": 0.5, "max_connection_age_seconds": 2}
    server = _serve(repo, "--workers", "2", **config)
    server.launch()
    try:
        _wait(lambda: len(_workers(server)) == 2, 60, "no workers", server)
        killed = min(_workers(server))
        os.kill(killed, signal.SIGKILL)  # before it serves (the OOM killer at start, say)
        server.wait_serving()
        first = _workers(server)
        assert len(first) == 2 and killed not in first and _restarts(server) == 1, first
        with Load(server.target, message, threads=4) as load:
            load.wait_for(100)
            os.kill(min(first), signal.SIGKILL)  # one worker dies; the other keeps serving
            _wait(
                lambda: len(_workers(server) - first) == 1,
                90,
                f"the worker was not replaced (first {first})",
                server,
            )
            _wait(lambda: _restarts(server) == 2, 5, "no restart line", server)
            second = _workers(server)
            assert server.process is not None
            server.process.send_signal(signal.SIGUSR2)  # a rolling restart under load
            _wait(
                lambda: "rolling restart done" in server.log_tail(),
                180,
                "no rolling restart",
                server,
            )
            third = _workers(server)
            assert len(third) == 2 and not third & second, (second, third)
            done = len(load.outcomes)
            load.wait_for(done + 100)
        assert load.failures() == [], load.failures()[:5]
    finally:
        server.stop()
