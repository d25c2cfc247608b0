"""Frost's one exception tree.

Every error Frost raises on purpose is a ``FrostError``. Each class carries the CLI exit code
and the gRPC status it maps to, so the CLI and the server translate errors in one place::

    FrostError                      exit 1  INTERNAL
    ├── BadInput                    exit 2  INVALID_ARGUMENT   the caller must fix the input
    │   ├── ConfigError                                         feature_store.yaml, flags, env
    │   ├── DefinitionError                                     feature definitions Frost can't use
    │   │   └── ContractError                                   bad frost.* tags (lists every issue)
    │   ├── SchemaMismatch                                      data missing or mistyping a column
    │   └── UnknownObject           exit 2  NOT_FOUND           no such view, service, feature
    ├── OnlineStoreError            exit 1  INTERNAL            Redis answered with an error
    │   └── OnlineStoreUnavailable  exit 1  UNAVAILABLE         Redis could not be reached
    ├── BrokerUnavailable           exit 1  UNAVAILABLE         the Kafka broker is unreachable
    ├── JobError                    exit 1  INTERNAL            a batch job failed while running
    ├── TransformError              exit 1  INTERNAL            an on-demand view's function failed
    ├── PartialFailure              exit 2 or 1                 some views failed, the rest done
    └── ServiceStartError           exit 1  UNAVAILABLE         a local service did not come up

Third-party exceptions (redis, kafka, pyspark) are translated where Frost calls them, with
``raise ... from exc`` so the original traceback is kept. Messages say what was wrong, where
(view, field, key, file) and, when there is one, what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "BadInput",
    "BrokerUnavailable",
    "ConfigError",
    "ContractError",
    "ContractIssue",
    "DefinitionError",
    "FrostError",
    "JobError",
    "OnlineStoreError",
    "OnlineStoreUnavailable",
    "PartialFailure",
    "SchemaMismatch",
    "ServiceStartError",
    "TransformError",
    "UnknownObject",
    "first_line",
]


class FrostError(Exception):
    """Base of every error Frost raises on purpose."""

    exit_code: ClassVar[int] = 1
    grpc_status: ClassVar[str] = "INTERNAL"


class BadInput(FrostError):
    """The input is wrong; retrying the same input cannot succeed."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"


class ConfigError(BadInput):
    """A configuration file, flag or environment variable is missing or invalid."""


class DefinitionError(BadInput):
    """A Feast definition (entity, view, service) cannot be used by Frost as declared."""


@dataclass(frozen=True)
class ContractIssue:
    """One problem with a contract tag: where it is and what is wrong."""

    view: str
    field: str | None
    tag: str
    problem: str

    def __str__(self) -> str:
        where = f"feature view '{self.view}'"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}, tag '{self.tag}': {self.problem}"


class ContractError(DefinitionError):
    """One or more ``frost.*`` tags are invalid; ``issues`` lists each of them."""

    def __init__(self, issues: list[ContractIssue]) -> None:
        self.issues = list(issues)
        lines = [str(issue) for issue in self.issues]
        if len(lines) == 1:
            message = f"invalid feature contract: {lines[0]}"
        else:
            message = f"{len(lines)} invalid feature contracts:\n  " + "\n  ".join(lines)
        super().__init__(message)


class SchemaMismatch(BadInput):
    """Data handed to Frost lacks a column it needs, or the column has the wrong type."""


class UnknownObject(BadInput):
    """A feature view, feature service or feature name that the registry does not know."""

    grpc_status = "NOT_FOUND"


class OnlineStoreError(FrostError):
    """The online store answered, but with an error."""


class OnlineStoreUnavailable(OnlineStoreError):
    """The online store could not be reached (connection refused, reset or timed out)."""

    grpc_status = "UNAVAILABLE"


class BrokerUnavailable(FrostError):
    """The Kafka-protocol broker could not be reached."""

    grpc_status = "UNAVAILABLE"


class JobError(FrostError):
    """A batch job failed while running (Spark could not start, a task failed)."""


class TransformError(FrostError):
    """An on-demand view's function raised, or returned what its schema does not declare;
    the message names the view (and the output) and the exception type."""


class PartialFailure(FrostError):
    """A job over several views finished the good ones; ``failures`` names each view that
    failed and why, ``result`` is what was done. Exit code 2 when every failure is bad
    input, else 1."""

    def __init__(self, failures: dict[str, FrostError], result: object) -> None:
        self.failures = dict(failures)
        self.result = result
        names = ", ".join(sorted(self.failures))
        super().__init__(f"{len(self.failures)} feature view(s) failed: {names}")

    @property
    def code(self) -> int:
        return 2 if all(isinstance(e, BadInput) for e in self.failures.values()) else 1


class ServiceStartError(FrostError):
    """A local service (redis-server, the Kafka-protocol broker) failed to start.

    ``details`` holds the end of the service's log, for debugging.
    """

    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a third-party exception's message (or its type's name):
    what Frost quotes when it translates the exception into one of its own."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
