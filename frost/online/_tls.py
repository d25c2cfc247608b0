"""The one TLS setup of every Redis connection Frost opens, sync or async.

``ssl=true`` in the connection string turns TLS on. Verification is on by default, as in
redis-py: the server's certificate must chain to a trusted CA (``ssl_ca_certs``, else the
system's) and name the host Frost connects to. Turning either off is explicit
(``ssl_cert_reqs=none`` or ``optional``, ``ssl_check_hostname=false``) and logged as a
warning naming the Redis, once per process and setting.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

from frost.errors import ConfigError

log = logging.getLogger("frost.online")
_REQUIREMENTS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_warned: set[tuple[str, str]] = set()


def tls_context(params: Mapping[str, Any], where: str) -> ssl.SSLContext | None:
    """The ``SSLContext`` for the connection string's parameters (``None``: no TLS)."""
    if not params.get("ssl"):
        return None
    requirement = str(params.get("ssl_cert_reqs", "required")).lower()
    if requirement not in _REQUIREMENTS:
        raise ConfigError(
            f"feature_store.yaml, online_store.connection_string: ssl_cert_reqs={requirement}; "
            "use required, optional or none"
        )
    try:
        context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
        if params.get("ssl_certfile"):
            context.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"feature_store.yaml, online_store.connection_string: the TLS files for Redis at "
            f"{where} cannot be used: {exc}"
        ) from exc
    check_hostname = bool(params.get("ssl_check_hostname", True))
    if requirement == "none":
        check_hostname = False
    context.check_hostname = check_hostname
    context.verify_mode = _REQUIREMENTS[requirement]
    if requirement != "required":
        _warn_once(where, f"certificates are not verified (ssl_cert_reqs={requirement})")
    elif not check_hostname:
        _warn_once(where, "the certificate's host name is not checked (ssl_check_hostname=false)")
    return context


def _warn_once(where: str, what: str) -> None:
    if (where, what) not in _warned:
        _warned.add((where, what))
        log.warning("TLS to Redis at %s: %s", where, what)
