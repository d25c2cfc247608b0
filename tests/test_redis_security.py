"""Password and TLS settings of the connection string reach a real redis-server."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    tls = [
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    ]  # fmt: skip
    with RedisServer(port=port, extra_args=tls).start():
        connection = f"127.0.0.1:{port},ssl=true,ssl_ca_certs={cert}"
        assert _round_trip(connection) == [10, 20]
        with pytest.raises(OnlineStoreUnavailable):
            _round_trip(f"127.0.0.1:{port},socket_timeout=2")
