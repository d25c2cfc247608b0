"""Point-in-time training sets on DuckDB: one ASOF join per view, in entity-file order.

For each entity row and view, the feature row of the same entity whose (event time,
created time, position) is the greatest with event time at or before the row's time is
found by ``ASOF LEFT JOIN`` on that ordering struct; it counts when it is no older than the
view's ttl, else the row gets nulls. Every entity row is kept, in file order (each row's
position in the entity file). The joined batches are then served (``_served``: declared
types, contracts) and written as parquet, a file per ``rows_per_file`` rows.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from frost.checks import ViewChecker
from frost.pipelines.engines._base import EntityRows, TrainingCounts, TrainingJob, ViewJoin
from frost.pipelines.engines._served import served_features
from frost.pipelines.engines._writes import EVENT_TIME
from frost.pipelines.engines.local._sql import (
    POSITION,
    duck_type,
    feature_rows,
    ident,
    literal,
    nano_columns,
    order_key,
    utc_time,
)

ENTITY_TIME = "__frost_entity_time"
_ROW = "__frost_row"
_BATCH_ROWS = 100_000


def training_set(con: Any, job: TrainingJob) -> TrainingCounts:
    query = con.sql(_query(job))
    counts = TrainingCounts(
        nulls=dict.fromkeys(job.output_names, 0), unmatched={j.view.name: 0 for j in job.joins}
    )
    checkers = [ViewChecker(join.contract) for join in job.joins]
    staging = job.out.with_name(f".{job.out.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        with _Files(staging, job.rows_per_file) as files:
            for batch in query.to_arrow_reader(_BATCH_ROWS):
                table = _served(pa.Table.from_batches([batch]), job, checkers, counts)
                files.write(table)
        _replace(staging, job.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _query(job: TrainingJob) -> str:
    ctes = [f"__e AS ({_entity_rows(job)})"]
    selected = [f"__e.* EXCLUDE ({ENTITY_TIME}, {_ROW})"]
    joins = []
    for number, join in enumerate(job.joins):
        alias = f"__v{number}"
        ctes.append(f"{alias} AS ({_view_rows(join)})")
        found = f"{alias}.{EVENT_TIME} IS NOT NULL"
        if join.view.ttl:
            micros = int(join.view.ttl.total_seconds() * 1_000_000)
            found += f" AND {alias}.{EVENT_TIME} >= __e.{ENTITY_TIME} - to_microseconds({micros})"
        for feature, name in zip(join.features, join.output_names, strict=True):
            selected.append(f"CASE WHEN {found} THEN {alias}.{ident(feature)} END AS {ident(name)}")
        selected.append(f"coalesce({found}, false) AS {ident(join.match_column)}")
        keys = " AND ".join(
            f"__e.{ident(k)} = {alias}.{ident(k)}" for k in join.view.join_key_names
        )
        entity_order = (
            f"{{'t': epoch_us(__e.{ENTITY_TIME}), 'c': 9223372036854775807, "
            f"'p': 9223372036854775807}}"
        )
        joins.append(
            f"ASOF LEFT JOIN {alias} ON {keys} AND {entity_order} >= {order_key(alias + '.')}"
        )
    return (
        f"WITH {', '.join(ctes)} SELECT {', '.join(selected)} FROM __e {' '.join(joins)} "
        f"ORDER BY __e.{_ROW}"
    )


def _entity_rows(job: TrainingJob) -> str:
    entities: EntityRows = job.entities
    path = entities.path
    if entities.is_csv:
        pattern = literal(str(path / "*.csv") if path.is_dir() else str(path))
        source = (
            f"(SELECT *, row_number() OVER () AS {_ROW} FROM read_csv({pattern}, header = true))"
        )
    else:
        pattern = literal(str(path / "**" / "*.parquet") if path.is_dir() else str(path))
        position = "(file_index::BIGINT << 40) | file_row_number"
        source = (
            f"(SELECT * EXCLUDE (file_row_number), {position} AS {_ROW} "
            f"FROM read_parquet({pattern}, file_row_number = true, union_by_name = true))"
        )
    types = {k.name: k.type for join in job.joins for k in join.view.join_keys}
    casts = ", ".join(f"CAST({ident(n)} AS {duck_type(t)}) AS {ident(n)}" for n, t in types.items())
    nanos = set() if entities.is_csv else nano_columns(path)
    stamp = utc_time(entities.timestamp_column, nanos)
    return f"SELECT * REPLACE ({casts}), {stamp} AS {ENTITY_TIME} FROM {source}"


def _view_rows(join: ViewJoin) -> str:
    parts = [
        feature_rows(source, join.view, list(join.features), number)
        for number, source in enumerate(join.sources)
    ]
    united = " UNION ALL BY NAME ".join(f"({part})" for part in parts)
    keys = join.view.join_keys
    casts = ", ".join(
        f"CAST({ident(k.name)} AS {duck_type(k.type)}) AS {ident(k.name)}" for k in keys
    )
    present = " AND ".join(f"{ident(k.name)} IS NOT NULL" for k in keys)
    return (
        f"SELECT * REPLACE ({casts}) FROM ({united}) "
        f"WHERE {present} AND {EVENT_TIME} IS NOT NULL AND {POSITION} IS NOT NULL"
    )


def _served(
    table: pa.Table, job: TrainingJob, checkers: list[ViewChecker], counts: TrainingCounts
) -> pa.Table:
    counts.rows += table.num_rows
    for join, checker in zip(job.joins, checkers, strict=True):
        names = dict(zip(join.output_names, join.features, strict=True))
        table = served_features(table, join.view, checker, names)
        matched = table.column(join.match_column)
        counts.unmatched[join.view.name] += table.num_rows - int(pc.sum(matched).as_py() or 0)
        table = table.drop_columns([join.match_column])
    for name in job.output_names:
        counts.nulls[name] += table.column(name).null_count
    return _passthrough_times(table)


def _passthrough_times(table: pa.Table) -> pa.Table:
    """Timestamps in microseconds, floored, with the zone spelt UTC (as the Spark engine
    writes them)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and (field.type.unit != "us" or field.type.tz):
            target = pa.timestamp("us", tz="UTC" if field.type.tz else None)
            column = table.column(index)
            if field.type.unit == "ns":
                ticks = pc.cast(column, pa.int64()).combine_chunks()
                nulls = ticks.is_null().to_numpy(zero_copy_only=False) if ticks.null_count else None
                micros = np.floor_divide(ticks.fill_null(0).to_numpy(), 1000)
                column = pa.array(micros, pa.int64(), mask=nulls).cast(target)
            else:
                column = pc.cast(column, target, safe=False)
            table = table.set_column(index, field.name, column)
    return table


class _Files:
    """Parquet files of at most ``rows`` rows each in ``directory``."""

    def __init__(self, directory: Path, rows: int) -> None:
        self._directory, self._rows = directory, rows
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0
        self._number = 0

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                path = self._directory / f"part-{self._number:05d}.parquet"
                # Dictionaries only where they pay (strings, bytes): on float features they
                # cost a third of the write and are dropped anyway.
                wanted = [f.name for f in table.schema if _dictionary_pays(f.type)]
                self._writer = pq.ParquetWriter(path, table.schema, use_dictionary=wanted)
                self._number += 1
            take = min(table.num_rows, self._rows - self._in_file)
            self._writer.write_table(table.slice(0, take))
            self._in_file += take
            table = table.slice(take)
            if self._in_file >= self._rows:
                self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._in_file = None, 0

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *_: object) -> None:
        self._close_file()


def _dictionary_pays(type_: pa.DataType) -> bool:
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        type_ = type_.value_type
    return bool(
        pa.types.is_string(type_) or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_) or pa.types.is_large_binary(type_)
        or pa.types.is_boolean(type_) or pa.types.is_integer(type_)
    )  # fmt: skip


def _replace(staging: Path, out: Path) -> None:
    """Put the finished output in place of whatever ``out`` held."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
