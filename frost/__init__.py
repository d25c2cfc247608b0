"""Frost: a fast, contract-aware feature store built on Feast.

The names below are the public API; everything else lives in modules whose names start
with an underscore or is reached through these.
"""

from frost.checks import CheckOutcome, Rule, ViewChecker
from frost.contracts import FieldContract, FreshnessPolicy, ViewContract, field_contract, freshness
from frost.errors import (
    BadInput,
    ConfigError,
    ContractError,
    DefinitionError,
    FrostError,
    OnlineStoreError,
    OnlineStoreUnavailable,
    SchemaMismatch,
    ServiceStartError,
    UnknownObject,
)
from frost.lookup import FeatureLookup, LookupResult
from frost.online import FieldStatus, OnlineStore, RedisStoreConfig, WriteStats
from frost.repo import FeatureRepo, ServiceSpec
from frost.schema import FeatureSpec, ViewSchema

__version__ = "0.1.0"

__all__ = [
    "BadInput",
    "CheckOutcome",
    "ConfigError",
    "ContractError",
    "DefinitionError",
    "FeatureLookup",
    "FeatureRepo",
    "FeatureSpec",
    "FieldContract",
    "FieldStatus",
    "FreshnessPolicy",
    "FrostError",
    "LookupResult",
    "OnlineStore",
    "OnlineStoreError",
    "OnlineStoreUnavailable",
    "RedisStoreConfig",
    "Rule",
    "SchemaMismatch",
    "ServiceSpec",
    "ServiceStartError",
    "UnknownObject",
    "ViewChecker",
    "ViewContract",
    "ViewSchema",
    "WriteStats",
    "__version__",
    "field_contract",
    "freshness",
]
