"""Password and TLS settings of the connection string reach a real redis-server."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from frost.codec import FeatureType, JoinKey, Scalar
from frost.errors import ConfigError, OnlineStoreUnavailable
from frost.online import OnlineStore, RedisStoreConfig
from frost.schema import FeatureSpec, ViewSchema
from frost.services import RedisServer, free_port

VIEW = ViewSchema(
    "v", (JoinKey("id", FeatureType(Scalar.INT64)),), (FeatureSpec("x", FeatureType(Scalar.INT64)),)
)
ROWS = pa.table(
    {
        "id": pa.array([1, 2], pa.int64()),
        "x": pa.array([10, 20], pa.int64()),
        "event_timestamp": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 2),
    }
)


def _round_trip(connection: str) -> list[object]:
    config = RedisStoreConfig.from_connection_string(connection)
    with OnlineStore.from_config(config, "p") as store:
        store.write(VIEW, ROWS)
        return store.read([(VIEW, ["x"])], {"id": [1, 2]})["v"].values("x")


@pytest.fixture(scope="module")
def password_redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--requirepass", "s3cret"]).start() as server:
        yield server


def test_password(password_redis: RedisServer) -> None:
    assert _round_trip(f"{password_redis.connection_string},password=s3cret") == [10, 20]
    with pytest.raises(ConfigError, match="did not accept the credentials"):
        _round_trip(f"{password_redis.connection_string},password=wrong")
    with pytest.raises(ConfigError, match="did not accept the credentials"):
        _round_trip(password_redis.connection_string)


def test_tls(tmp_path: Path) -> None:
    from tests.backends import TlsRedis

    with TlsRedis(tmp_path) as server:
        server.start()
        assert _round_trip(server.connection_string) == [10, 20]
        with pytest.raises(OnlineStoreUnavailable):
            _round_trip(f"127.0.0.1:{server.port},socket_timeout=2")


@pytest.mark.parametrize("host", ["redis.elsewhere.example", "127.0.0.1"])
def test_tls_host_names_are_checked_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    """A certificate for another host: ``frost get``, ``frost materialize`` and
    ``frost serve`` all refuse, with one clear line; the right name: all three work."""
    from frost import repo as repo_module
    from frost.app.cli import main
    from frost.repo import FeatureRepo
    from frost.sample_data import SampleSpec, generate
    from tests.backends import TlsRedis
    from tests.conftest import SAMPLE_END, copy_repo
    from tests.serving_support import Server

    with TlsRedis(tmp_path / "certs", host=host).start() as server:
        repo = FeatureRepo(copy_repo(tmp_path, server.connection_string))
        generate(repo.path / "data", SampleSpec(users=20, experiences=5, days=2, end=SAMPLE_END))
        repo_module.apply(repo)
        base = ["--repo", str(repo.path)]
        window = ["--start", "2026-10-01", "--end", SAMPLE_END.isoformat()]
        materialized = main([*base, "materialize", *window, "--views", "user_profile"])
        got = main([*base, "get", "--service", "churn_prediction", "--entity", "user_id=1000001"])
        err = capsys.readouterr().err
        if host == "127.0.0.1":
            assert (materialized, got) == (0, 0), err
            from frost.client import FeatureClient

            with Server(repo) as serving, FeatureClient(serving.target) as client:
                served = client.get("churn_prediction", {"user_id": [1000001]})
            assert served.statuses["level"][0].name in ("PRESENT", "OUTSIDE_MAX_AGE")
            return
        assert (materialized, got) == (2, 2)
        lines = err.strip().splitlines()
        assert len(lines) == 2, err
        for line in lines:
            assert "its TLS certificate was refused" in line and "127.0.0.1" in line, line
        result = subprocess.run(
            [sys.executable, "-m", "frost", *base, "serve", "--port", str(free_port())],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith("frost: error: Redis at 127.0.0.1")
        assert "its TLS certificate was refused" in result.stderr
