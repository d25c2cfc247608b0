"""Where a command goes, for the sync and the async clients alike: the cluster's slot map,
what a reply says about the topology, and the primary a Sentinel names.

No I/O here: the clients ask Redis (``CLUSTER SLOTS``, ``SENTINEL get-master-addr-by-name``)
and hand the replies to these functions, so the rules of following a cluster or a failover
are written once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

from frost.errors import ConfigError, OnlineStoreUnavailable
from frost.online._resp import ErrorReply, command

__all__ = [
    "Address",
    "Reroute",
    "SlotMap",
    "primary_from_sentinel",
    "reroute",
    "slot_of",
]

Address = tuple[str, int]
SLOTS = 16384


def slot_of(key: bytes) -> int:
    """The cluster slot of a key (CRC16 of the key, or of its ``{hash tag}``)."""
    return int(key_slot(key))


class SlotMap:
    """Slot -> primary address, from a ``CLUSTER SLOTS`` reply."""

    def __init__(self, primaries: list[Address]) -> None:
        self._primaries = primaries

    @classmethod
    def from_reply(cls, reply: Sequence[Any] | ErrorReply, asked: Address) -> SlotMap:
        """The map from ``asked``'s reply to ``CLUSTER_SLOTS``; ``asked`` stands in for a
        primary the reply names with an empty host. An error reply: not a cluster node."""
        if isinstance(reply, ErrorReply):
            raise ConfigError(
                f"Redis at {asked[0]}:{asked[1]} is not a cluster node ({reply}); set "
                "online_store.redis_type: redis in feature_store.yaml"
            )
        slots: list[Address] = [asked] * SLOTS
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            host = _text(primary[0]) or asked[0]
            slots[start : end + 1] = [(host, int(primary[1]))] * (end - start + 1)
        return cls(slots)

    def node_of(self, key: bytes) -> Address:
        return self._primaries[slot_of(key)]

    def node_of_slot(self, slot: int) -> Address:
        return self._primaries[slot]

    def primaries(self) -> list[Address]:
        return sorted(set(self._primaries))


CLUSTER_SLOTS = command(b"CLUSTER", b"SLOTS")


def no_cluster_node(problems: Sequence[str]) -> OnlineStoreUnavailable:
    """The error when no seed or known node answered ``CLUSTER SLOTS``."""
    return OnlineStoreUnavailable(
        "no Redis Cluster node answered: " + "; ".join(dict.fromkeys(problems))
    )


class Reroute(enum.Enum):
    MOVED = "MOVED"  # the slot lives elsewhere now: refresh the map, resend
    ASK = "ASK"  # this one command, to the importing node, after ASKING
    RETRY = "RETRY"  # TRYAGAIN, CLUSTERDOWN, LOADING, READONLY: wait, refresh, resend


@dataclass(frozen=True)
class Rerouted:
    kind: Reroute
    address: Address | None


_RETRY_CODES = frozenset({"TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN"})


def reroute(code: str, message: str) -> Rerouted | None:
    """What an error reply (its ``code`` and the rest of its text) asks the client to do,
    or ``None`` for an error that is the command's own (e.g. WRONGTYPE). READONLY and
    MASTERDOWN come from a primary demoted by a failover: ask for the primary again."""
    if code in ("MOVED", "ASK"):
        host, _, port = message.rsplit(maxsplit=1)[-1].rpartition(":")
        return Rerouted(Reroute(code), (host, int(port)))
    if code in _RETRY_CODES:
        return Rerouted(Reroute.RETRY, None)
    return None


def primary_from_sentinel(reply: Any) -> Address | None:
    """The primary in a ``SENTINEL get-master-addr-by-name`` reply (``None``: unknown)."""
    if not reply or len(reply) != 2:
        return None
    return _text(reply[0]), int(reply[1])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
