"""`frost training-set --from-logs`: a training set of the values production served.

    report = training_set_from_logs(repo, "churn_prediction", "labels.parquet", "out/")

The features are the logged values of a feature service (``frost.feature_log``), joined to
the rows of a label file (parquet or CSV):

* **by request id**, when the label file has a ``request_id`` (or ``__request_id``)
  column: each label row takes the logged row of that request and, when the label file
  also has the join keys (a request of several entity rows), of those keys;
* **else by entity keys and time**: each label row takes the latest row of its entity
  logged at or before its time (``--timestamp-column``), the point-in-time join of every
  training set, run by the engine on the log files as a source.

Every label row is kept, in the file's order, with nulls where no logged row matches, and
its columns are passed through (with the join keys of the matched lookup when the file has
none). Features are named as in training sets (``feature``, or
``view__feature`` with ``full_feature_names``), as served (a withheld or missing value is
null), with ``__request_id`` and ``__log_timestamp`` of the matched lookup.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from frost.codec import FeatureType, JoinKey, Scalar
from frost.contracts import FreshnessPolicy, ViewContract
from frost.errors import BadInput
from frost.feature_log import LOG_TIMESTAMP, REQUEST_ID, LogTarget, read_logs
from frost.pipelines.engines import EntityRows, TrainingJob, ViewJoin, open_engine
from frost.pipelines.offline._audit import service_log_target
from frost.repo import FeatureRepo, SourceSpec
from frost.schema import FeatureSpec, ViewSchema
from frost.settings import SparkSettings

__all__ = ["FromLogsReport", "training_set_from_logs"]

_REQUEST_COLUMNS = ("request_id", REQUEST_ID)
_ROW = "__frost_label_row"
_LOGGED_ROW = "__frost_logged_row"
_LOGGED_AT = "__frost_logged_at"


@dataclass(frozen=True)
class FromLogsReport:
    service: str
    out: str
    rows: int
    matched: int  # label rows that found a logged row
    joined_by: str  # "request id" or "entity keys and time"
    seconds: float


def training_set_from_logs(
    repo: FeatureRepo,
    service: str,
    labels: str | Path,
    out: str | Path,
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    engine: str | None = None,
    spark_settings: SparkSettings | None = None,
) -> FromLogsReport:
    """Join the logged values of ``service`` to the rows of ``labels``; parquet in ``out``
    (a directory, replaced)."""
    started = time.perf_counter()
    target = service_log_target(repo, service)
    label_path = Path(labels)
    table = _read_labels(label_path)
    names = {
        f.column: (f.column if full_feature_names else f.feature) for f in target.schema.features
    }
    clashes = sorted(set(names.values()) & set(table.column_names))
    if clashes:
        raise BadInput(f"{labels}: column(s) {', '.join(clashes)} clash with logged features")
    by_request = next((c for c in _REQUEST_COLUMNS if c in table.column_names), None)
    if by_request is not None:
        joined = _by_request(table, read_logs(target), target, by_request, names)
        how = "request id"
    else:
        joined = _by_keys_and_time(
            repo, target, label_path, table, timestamp_column, names, engine, spark_settings
        )
        how = "entity keys and time"
    directory = Path(out)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    pq.write_table(joined, directory / "part-00000.parquet")
    matched = joined.num_rows - joined.column(LOG_TIMESTAMP).null_count
    seconds = time.perf_counter() - started
    return FromLogsReport(service, str(directory), joined.num_rows, matched, how, seconds)


def _read_labels(path: Path) -> pa.Table:
    if not path.exists():
        raise BadInput(f"label file {path}: no such file or directory")
    if path.suffix.lower() == ".csv":
        from pyarrow import csv

        return csv.read_csv(path)
    return pq.read_table(path)


def _by_request(
    labels: pa.Table, logged: pa.Table, target: LogTarget, column: str, names: dict[str, str]
) -> pa.Table:
    """Label rows joined to logged rows on the request id (and the join keys given)."""
    keys = [k for k in target.schema.join_keys if k in labels.column_names]
    left = labels.select([column, *keys]).append_column(_ROW, pa.array(np.arange(labels.num_rows)))
    right = logged.select([REQUEST_ID, *keys]).rename_columns(["__frost_id", *keys])
    right = right.append_column("__frost_logged_row", pa.array(np.arange(logged.num_rows)))
    left = left.set_column(0, "__frost_id", left.column(column).cast(pa.string()))
    for key in keys:  # the label file's key columns as the log types them
        at = left.schema.get_field_index(key)
        left = left.set_column(at, key, left.column(key).cast(logged.schema.field(key).type))
    matched = left.join(right, keys=["__frost_id", *keys], join_type="left outer")
    matched = matched.sort_by(_ROW)
    index = matched.column("__frost_logged_row")
    if matched.num_rows != labels.num_rows:
        raise BadInput(
            f"label rows match several logged rows of one request: give the join keys "
            f"({', '.join(target.schema.join_keys)}) in the label file"
        )
    absent = [k for k in target.schema.join_keys if k not in labels.column_names]
    served = logged.select([*absent, *names, REQUEST_ID, LOG_TIMESTAMP]).take(index)
    out = labels
    for name in served.column_names:
        out = out.append_column(names.get(name, name), served.column(name))
    return out


def _by_keys_and_time(  # noqa: PLR0917 - one caller
    repo: FeatureRepo,
    target: LogTarget,
    path: Path,
    labels: pa.Table,
    timestamp_column: str,
    names: dict[str, str],
    engine: str | None,
    spark_settings: SparkSettings | None,
) -> pa.Table:
    """Label rows joined to the latest logged row of their entity at or before their time:
    the engine's point-in-time join over the log as a source, which gives each label row
    the position of its logged row; the values are then taken from the log as logged."""
    schema = target.schema
    missing = [c for c in [*schema.join_keys, timestamp_column] if c not in labels.column_names]
    if missing:
        raise BadInput(
            f"label file {path}: needs a request_id column, or the join keys and a time "
            f"column ({timestamp_column}); missing {', '.join(missing)}"
        )
    logged = read_logs(target)
    keys = dict(schema.keys)
    view = ViewSchema(
        name=f"{schema.service}__log",
        join_keys=tuple(JoinKey(k, keys[k]) for k in schema.join_keys),
        features=(FeatureSpec(_LOGGED_ROW, FeatureType(Scalar.INT64)),),
    )
    with tempfile.TemporaryDirectory(prefix="frost-from-logs-") as work:
        source_path = Path(work) / "log.parquet"
        columns = {k: logged.column(k) for k in schema.join_keys}
        columns[_LOGGED_AT] = logged.column(LOG_TIMESTAMP)
        columns[_LOGGED_ROW] = pa.array(np.arange(logged.num_rows))
        pq.write_table(pa.table(columns), source_path)
        source = SourceSpec(view.name, "file", str(source_path), "parquet", _LOGGED_AT)
        contract = ViewContract(view.name, FreshnessPolicy(None, "none"))
        join = ViewJoin(view, contract, (_LOGGED_ROW,), (_LOGGED_ROW,), (source,))
        labelled = Path(work) / "labels.parquet"
        pq.write_table(labels, labelled)
        rows = EntityRows(labelled, False, timestamp_column, tuple(labels.column_names))
        job = TrainingJob(schema.service, (join,), rows, Path(work) / "out")
        with open_engine(repo.settings, engine, spark_settings=spark_settings) as chosen:
            chosen.training_set(job)
        joined = pq.read_table(Path(work) / "out")
    index = joined.column(_LOGGED_ROW)
    served = logged.select([*names, REQUEST_ID, LOG_TIMESTAMP]).take(index)
    out = joined.drop_columns([_LOGGED_ROW])
    for name in served.column_names:
        out = out.append_column(names.get(name, name), served.column(name))
    return out
