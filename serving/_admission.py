"""Who is calling, and may they: bearer tokens, the anonymous entry, failed-token limits.

``Admission`` is built from one ``ServeSettings`` and replaced whole on reload, so a request
sees either the old tokens and limits or the new ones, never a mix.

* No ``clients:`` and no ``anonymous:``: every call is the unrestricted client
  ``anonymous``.
* ``anonymous:`` given: calls without a token are the client ``anonymous``, with that
  entry's services and limits (tokens are optional).
* ``clients:`` given and no ``anonymous:``: a call needs a known bearer token.
* A wrong token is UNAUTHENTICATED; after ``auth_failure_burst`` wrong tokens from one peer
  address, that peer gets RESOURCE_EXHAUSTED without its token being looked at, until its
  bucket refills at ``auth_failures_per_second`` (counted per worker).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import grpc

from frost.serving._config import ClientSpec, ServeSettings
from frost.serving._limits import Limiter, Refusal, Ticket

__all__ = ["Admission", "Denied", "Limited"]

_PEERS = 10_000  # peers whose failed attempts are remembered (least recent forgotten)
RETRY_PUSHBACK = "grpc-retry-pushback-ms"  # gRPC's retry hint (A6), in trailing metadata


class Denied(Exception):
    """A call that is not let in: its status code, and a retry hint when there is one."""

    def __init__(
        self, code: grpc.StatusCode, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        if self.retry_after is None:
            return ()
        return ((RETRY_PUSHBACK, str(max(1, round(self.retry_after * 1000)))),)


class Admission:
    """Tokens, services and limits of one version of the settings."""

    def __init__(self, settings: ServeSettings, limiter: Limiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self._tokens = {_digest(c.token): c for c in settings.clients}
        self._anonymous = settings.anonymous
        self._open = not settings.clients and settings.anonymous is None
        self._rate = settings.auth_failures_per_second
        self._burst = settings.auth_failure_burst
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def authenticate(self, context: Any) -> ClientSpec | None:
        """The caller's client spec (``None``: unrestricted), or ``Denied``."""
        if self._open:
            return None
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if scheme.lower() != "bearer":
                    token = None
                break
        if not token:
            if self._anonymous is not None:
                return self._anonymous
            raise Denied(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server needs a bearer token: metadata 'authorization: Bearer <token>'",
            )
        if not self._tokens:  # tokens are not used here: the call is anonymous
            return self._anonymous
        peer = _address(context.peer())
        self._check_failures(peer)
        spec = self._tokens.get(_digest(token))
        if spec is None:
            self._failed(peer)
            raise Denied(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not known here")
        return spec

    def may_use(self, spec: ClientSpec | None, service: str | None) -> None:
        """``Denied`` (PERMISSION_DENIED) unless the caller may use ``service`` (``None``:
        a feature list); the message names nothing the caller may not see."""
        if spec is None or spec.may_use(service):
            return
        what = f"feature service '{service}'" if service else "feature lists"
        raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"client '{spec.name}' may not use {what}")

    def visible(self, spec: ClientSpec | None, service: str) -> bool:
        return spec is None or spec.may_use(service)

    def admit(self, spec: ClientSpec | None, service: str | None, entities: int) -> Ticket:
        """A ticket for a request within the caller's limits, or ``Denied``
        (RESOURCE_EXHAUSTED, naming the client and the limit, with a retry hint)."""
        if spec is None or not spec.limited:
            return _UNLIMITED
        decided = self.limiter.admit(spec, service, entities)
        if isinstance(decided, Refusal):
            raise Limited(decided)
        return decided

    # -- failed tokens, per peer --------------------------------------------------------------

    def _check_failures(self, peer: str) -> None:
        entry = self._failures.get(peer)
        if entry is None:
            return
        level = min(self._burst, entry[0] + (time.monotonic() - entry[1]) * self._rate)
        if level < 1:
            wait = (1 - level) / self._rate
            raise Denied(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many failed authentications from {peer}; retry in {wait * 1000:.0f} ms",
                wait,
            )

    def _failed(self, peer: str) -> None:
        now = time.monotonic()
        entry = self._failures.pop(peer, None)
        level = self._burst if entry is None else entry[0] + (now - entry[1]) * self._rate
        self._failures[peer] = [min(self._burst, level) - 1, now]
        while len(self._failures) > _PEERS:
            self._failures.popitem(last=False)


class Limited(Denied):
    """Over a limit: RESOURCE_EXHAUSTED, with the client and the limit for the metric."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message, refusal.retry_after)
        self.client = refusal.client
        self.limit = refusal.limit


_UNLIMITED = Ticket(None, ())


def _address(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` → ``ipv4:127.0.0.1`` (failed attempts count per address)."""
    head, _, tail = peer.rpartition(":")
    return head if tail.isdigit() and head else peer


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
