"""Log files: Arrow tables of logged lookups appended to parquet files, never half-visible.

One open parquet file per feature service, date and client, in ``<path>/<YYYY-MM-DD>/``:
one directory per ``__log_date``, not ``__log_date=...``, which Feast's reader would take
for a Hive partition clashing with the column of that name.

A file is written under a hidden name (``.<name>.parquet.tmp``, which readers of the
directory skip) and renamed when it is rolled (``roll_bytes``, ``roll_seconds``, a new
date, another schema, ``close``): a reader never sees a half-written file, and a writer
killed mid-write leaves only a hidden temporary file, removed by the next writer of the
same directory. The client is in the file's name and metadata (``frost.client``): Feast's
schema has no column for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from frost.feature_log._schema import LOG_DATE, LogTarget
from frost.services import process_alive

__all__ = ["ParquetFiles"]

_TEMP = re.compile(r"^\.frost-(?P<host>.+?)-(?P<pid>\d+)-\d{6}-.*\.parquet\.tmp$")
_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
CLIENT_METADATA = b"frost.client"


@dataclass
class _OpenFile:
    writer: pq.ParquetWriter
    schema: pa.Schema
    temp: Path
    final: Path
    opened: float
    day: date


class ParquetFiles:
    """Appends log tables to parquet files and renames them into place when rolled."""

    def __init__(
        self,
        *,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 300.0,
        report: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.files_rolled = 0
        self._report = report
        self._files: dict[tuple[str, str, date], _OpenFile] = {}
        self._sequence = 0
        self._cleaned: set[Path] = set()
        self._host = _SAFE.sub("_", socket.gethostname())

    def write(self, target: LogTarget, client: str, table: pa.Table, records: int) -> None:
        days = table.column(LOG_DATE).unique().to_pylist()
        for day in sorted(days):
            part = table if len(days) == 1 else _rows_of(table, day)
            opened = self._file(target, client, day, part.schema)
            opened.writer.write_table(part)
            if opened.temp.stat().st_size >= self.roll_bytes:
                self._roll((target.schema.service, client, day))
        if self._report is not None:
            self._report(target.schema.service, "written", records)

    def tick(self) -> None:
        now = time.time()
        today = datetime.now(UTC).date()
        for key, opened in list(self._files.items()):
            if now - opened.opened >= self.roll_seconds or opened.day < today:
                self._roll(key)

    def roll_all(self) -> None:
        """Close every open file and rename it into place now."""
        for key in list(self._files):
            self._roll(key)

    def drop(self, service: str) -> None:
        """After a failed write: keep what the service's open files hold when they still
        close into valid files, remove them otherwise."""
        for key in [k for k in self._files if k[0] == service]:
            opened = self._files[key]
            try:
                self._roll(key)
            except Exception:
                self._files.pop(key, None)
                with contextlib.suppress(OSError):
                    opened.temp.unlink(missing_ok=True)

    def close(self) -> None:
        self.roll_all()

    def _file(self, target: LogTarget, client: str, day: date, schema: pa.Schema) -> _OpenFile:
        key = (target.schema.service, client, day)
        opened = self._files.get(key)
        if opened is not None and opened.schema.equals(schema):
            return opened
        if opened is not None:  # the service's schema changed: a file holds one schema
            self._roll(key)
        directory = target.path / day.isoformat()
        directory.mkdir(parents=True, exist_ok=True)
        self._clean(directory)
        self._sequence += 1
        stem = f"frost-{self._host}-{os.getpid()}-{self._sequence:06d}-{_SAFE.sub('_', client)}"
        temp = directory / f".{stem}.parquet.tmp"
        metadata = {**(schema.metadata or {}), CLIENT_METADATA: client.encode()}
        opened = _OpenFile(
            pq.ParquetWriter(temp, schema.with_metadata(metadata)),
            schema,
            temp,
            directory / f"{stem}.parquet",
            time.time(),
            day,
        )
        self._files[key] = opened
        return opened

    def _roll(self, key: tuple[str, str, date]) -> None:
        opened = self._files.pop(key)
        opened.writer.close()
        opened.temp.replace(opened.final)
        self.files_rolled += 1

    def _clean(self, directory: Path) -> None:
        """Remove hidden temporary files left by writers of this host that are gone."""
        if directory in self._cleaned:
            return
        self._cleaned.add(directory)
        for path in directory.glob(".frost-*.parquet.tmp"):
            found = _TEMP.match(path.name)
            if found is None or found["host"] != self._host:
                continue
            if not process_alive(int(found["pid"])):
                path.unlink(missing_ok=True)


def _rows_of(table: pa.Table, day: date) -> pa.Table:
    return table.filter(pc.equal(table.column(LOG_DATE), pa.scalar(day, pa.date32())))
