"""The public API is deliberate: this test changes whenever it does."""

from __future__ import annotations

import subprocess
import sys

import frost

PUBLIC = {
    "BadInput", "CheckOutcome", "ConfigError", "ContractError", "DefinitionError",
    "FeatureLookup", "FeatureRepo", "FeatureSpec", "FieldContract", "FieldStatus",
    "FreshnessPolicy", "FrostError", "LookupResult", "OnlineStore", "OnlineStoreError",
    "OnlineStoreUnavailable", "RedisStoreConfig", "Rule", "SchemaMismatch", "ServiceSpec",
    "ServiceStartError", "UnknownObject", "ViewChecker", "ViewContract", "ViewSchema",
    "WriteStats", "__version__", "field_contract", "freshness",
}  # fmt: skip


def test_public_names_are_locked() -> None:
    assert set(frost.__all__) == PUBLIC
    for name in frost.__all__:
        assert hasattr(frost, name), name


def test_errors_map_to_exit_codes_and_grpc_statuses() -> None:
    assert frost.FrostError.exit_code == 1
    assert frost.BadInput.exit_code == frost.ContractError.exit_code == 2
    assert frost.UnknownObject.grpc_status == "NOT_FOUND"
    assert frost.OnlineStoreUnavailable.grpc_status == "UNAVAILABLE"
    assert frost.SchemaMismatch.grpc_status == "INVALID_ARGUMENT"


def test_library_imports_without_heavy_engines() -> None:
    code = (
        "import sys, frost, frost.online, frost.checks, frost.services, frost.quality;"
        "heavy = [m for m in ('pyspark', 'airflow', 'great_expectations', 'feast') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_quality_names_are_locked() -> None:
    import frost.quality

    assert set(frost.quality.__all__) == {
        "Check", "ExpectationSpec", "QualityOptions", "QualityReport", "Status", "Suite",
        "ViewQuality", "quality_report", "view_suites",
    }  # fmt: skip
