"""The Redis deployments the online-store suite runs on, each a real one on loopback:

* ``standalone``: one redis-server;
* ``cluster``: three primaries;
* ``sentinel``: a primary, a replica and three Sentinels;
* ``password``: one redis-server with ``requirepass``;
* ``tls``: one redis-server speaking only TLS, with a certificate for 127.0.0.1.

A ``Backend`` gives the store's configuration and plain redis-py clients of its primaries,
for the tests to look at (or break) what the store wrote.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from frost.online import RedisStoreConfig
from frost.services import RedisSentinels, RedisServer, free_port

BACKENDS = ("standalone", "cluster", "sentinel", "password", "tls")
PASSWORD = "s3cret"


@dataclass
class Backend:
    name: str
    config: RedisStoreConfig
    primaries: list[redis.Redis]

    def client_for(self, key: bytes) -> redis.Redis:
        """The primary that holds ``key`` (a cluster's by slot)."""
        if len(self.primaries) == 1:
            return self.primaries[0]
        cluster = redis.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode("127.0.0.1", c.connection_pool.connection_kwargs["port"])
                for c in self.primaries
            ]
        )
        node = cluster.get_node_from_key(key)
        cluster.close()
        return next(
            c for c in self.primaries if c.connection_pool.connection_kwargs["port"] == node.port
        )

    def flush(self) -> None:
        for client in self.primaries:
            client.flushall()

    def connections(self) -> int:
        return sum(int(c.info("clients")["connected_clients"]) for c in self.primaries)


def certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed CA certificate for ``host`` (an IP address or a DNS name) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{host}.crt", directory / f"{host}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsRedis(RedisServer):
    """A redis-server that speaks only TLS, with a certificate for ``host``."""

    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        self.cert, self.key = certificate(directory, host)
        port = free_port()
        tls = [
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.cert),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
        super().__init__(port=port, extra_args=tls)

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port},ssl=true,ssl_ca_certs={self.cert}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.cert))


def make_backend(name: str, service: Any) -> Backend:
    """The backend ``name`` over its running service."""
    if name == "standalone":
        config = RedisStoreConfig.from_connection_string(service.connection_string)
        return Backend(name, config, [redis.Redis(port=service.port)])
    if name == "cluster":
        config = RedisStoreConfig.from_connection_string(service.connection_string, cluster=True)
        return Backend(name, config, [redis.Redis(port=p) for p in service.ports])
    if name == "sentinel":
        config = RedisStoreConfig.from_connection_string(
            service.connection_string, sentinel_master=RedisSentinels.MASTER
        )
        return Backend(name, config, [redis.Redis(port=service.primary_port())])
    if name == "password":
        config = RedisStoreConfig.from_connection_string(
            f"{service.connection_string},password={PASSWORD}"
        )
        return Backend(name, config, [redis.Redis(port=service.port, password=PASSWORD)])
    if name == "tls":
        config = RedisStoreConfig.from_connection_string(service.connection_string)
        return Backend(name, config, [service.client()])
    raise AssertionError(name)


SERVICE_FIXTURES = {
    "standalone": "redis_server",
    "cluster": "redis_cluster",
    "sentinel": "redis_sentinels",
    "password": "password_redis",
    "tls": "tls_redis",
}
