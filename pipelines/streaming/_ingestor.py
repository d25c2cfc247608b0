"""The ingest loop: micro-batches from Kafka to Redis, at least once.

    poll until the batch is full or its time is up
      → per view: decode (bad messages → dead letters), UDF, contracts
          (a broken field is nulled; a row that cannot be saved that way is dead-lettered)
      → newer-wins write to Redis (retried with backoff while Redis is unreachable)
      → appended to the offline log, when one is configured
      → dead letters acknowledged by the broker
      → offsets committed

Nothing is committed before Redis and the broker have everything from the batch, so a crash
at any point only replays messages, and replays are harmless: writes are newer-wins. While
Redis works through one batch's writes, the next batch is polled (one batch in flight).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from frost.checks import Rule, ViewChecker
from frost.errors import OnlineStoreUnavailable, TransformError
from frost.online import OnlineStore, PendingFold, PendingWrite, WriteStats
from frost.pipelines.streaming._dead_letters import DeadLetters
from frost.pipelines.streaming._decode import EVENT_TIME, BatchDecoder, Decoded, Reject
from frost.pipelines.streaming._events import EventDecoder
from frost.pipelines.streaming._metrics import IngestMetrics
from frost.pipelines.streaming._offline_log import OfflineLog
from frost.pipelines.streaming._plan import StreamPlan
from frost.transforms import written_outputs

log = logging.getLogger("frost.ingest")
_MAX_BACKOFF = 5.0
_LAG_EVERY = 5.0
_FRESHNESS_SAMPLE = 500


@dataclass(frozen=True)
class IngestSettings:
    """How the ingest loop batches and waits."""

    batch_size: int = 5000
    batch_ms: int = 200
    max_seconds: float | None = None
    commit_timeout_ms: int = 10_000
    # Replicas each batch must reach before its offsets are committed (None: the repo's
    # frost.ingest.wait_for_replicas).
    wait_for_replicas: int | None = None
    # How long to retry an unreachable broker at start before giving up.
    broker_wait_seconds: float = 60.0


@dataclass
class IngestReport:
    """Totals of one ``Ingestor.run``."""

    messages: int = 0
    rows_written: int = 0
    skipped_older: int = 0
    events_folded: int = 0  # into aggregation tiles
    events_replayed: int = 0  # already folded (a replay), or below a backfill's watermark
    dead_letters: int = 0
    values_nulled: int = 0
    batches: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Write:
    plan: StreamPlan
    table: pa.Table
    pending: PendingWrite | PendingFold | None  # None: sending failed, send again
    # An aggregation view's events: the partition fence and offset of each row.
    fences: list[bytes] | None = None
    offsets: list[int] | None = None


@dataclass
class _InFlight:
    """A micro-batch whose writes are in Redis's hands, not yet acknowledged."""

    batch: dict[Any, list[Any]]
    writes: list[_Write] = field(default_factory=list)

    def abandon(self) -> None:
        for write in self.writes:
            if write.pending is not None:
                write.pending.abandon()


class Ingestor:
    """Consumes the topics of ``plans`` and keeps Redis current. Kafka and Redis clients are
    passed in: ``consumer`` must be subscribed to every plan's topic, with auto-commit off."""

    def __init__(
        self,
        plans: list[StreamPlan],
        store: OnlineStore,
        consumer: Any,
        *,
        dead_letters: DeadLetters,
        metrics: IngestMetrics,
        settings: IngestSettings,
        offline_log: OfflineLog | None = None,
    ) -> None:
        self._plans_by_topic: dict[str, list[StreamPlan]] = defaultdict(list)
        for plan in plans:
            self._plans_by_topic[plan.topic].append(plan)
        self._checkers = {plan.view.name: ViewChecker(plan.contract) for plan in plans}
        self._derived = {
            plan.view.name: [
                (dataclasses.replace(plan, view=view, contract=contract, derived=()),
                 ViewChecker(contract))
                for view, contract in plan.derived
            ]
            for plan in plans
        }  # fmt: skip
        self._decoders = {
            plan.view.name: BatchDecoder(plan) for plan in plans if not plan.aggregated
        }
        self._events = {plan.view.name: EventDecoder(plan) for plan in plans if plan.aggregated}
        self._store = store
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._settings = settings
        self._offline_log = offline_log
        self._stash: dict[Any, list[Any]] = {}
        self._last_lag = 0.0

    def run(self, stop: threading.Event) -> IngestReport:
        """Ingest until ``stop`` is set (or ``max_seconds`` pass); the batch in progress is
        finished and committed first.

        One batch is in flight at a time: while Redis works through batch k, batch k+1 is
        polled; batch k is then acknowledged and committed before k+1 is sent.
        """
        report = IngestReport()
        started = time.monotonic()
        limit = self._settings.max_seconds
        in_flight: _InFlight | None = None
        try:
            while not stop.is_set():
                if limit is not None and time.monotonic() - started >= limit:
                    break
                batch = self._collect(stop)
                if in_flight is not None:
                    self._finish(in_flight, report, stop)
                    in_flight = None
                if batch:
                    in_flight = self._start(batch, report)
                self._refresh_lag()
            if in_flight is not None:
                self._finish(in_flight, report, stop)
                in_flight = None
        finally:
            if in_flight is not None:
                in_flight.abandon()
        report.seconds = time.monotonic() - started
        return report

    # -- polling ----------------------------------------------------------------------------

    def _collect(self, stop: threading.Event) -> dict[Any, list[Any]]:
        """Records of one micro-batch by partition, bounded by count and time."""
        batch, self._stash = self._stash, {}
        count = sum(len(v) for v in batch.values())
        deadline = time.monotonic() + self._settings.batch_ms / 1000
        while count < self._settings.batch_size and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(
                timeout_ms=int(remaining * 1000) + 1,
                max_records=self._settings.batch_size - count,
            )
            if not polled:
                if count:
                    break  # nothing more right now: write what we have, keep latency low
                continue
            for partition, records in polled.items():
                batch.setdefault(partition, []).extend(records)
                count += len(records)
        return batch

    # -- one micro-batch --------------------------------------------------------------------

    def _start(self, batch: dict[Any, list[Any]], report: IngestReport) -> _InFlight:
        """Decode, check, dead-letter and send the batch's writes (without waiting)."""
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for partition, records in batch.items():
            by_topic[partition.topic].extend(records)
        in_flight = _InFlight(batch)
        for topic, records in by_topic.items():
            self._metrics.count_messages(topic, len(records))
            report.messages += len(records)
            for plan in self._plans_by_topic.get(topic, []):
                if plan.aggregated:
                    self._start_fold(plan, records, in_flight, report)
                    continue
                decoded = self._decoders[plan.view.name].decode([r.value for r in records])
                table = self._apply_contracts(plan, decoded, report)
                for reject in decoded.rejects:
                    self._dead_letter(plan, records[reject.index], reject, report)
                if table.num_rows:
                    in_flight.writes.append(_Write(plan, table, self._submit(plan, table)))
                    self._start_derived(plan, table, records, in_flight, report)
        return in_flight

    def _start_derived(
        self,
        plan: StreamPlan,
        table: pa.Table,
        records: list[Any],
        in_flight: _InFlight,
        report: IngestReport,
    ) -> None:
        """The on-demand views written with ``plan``'s rows: computed, checked, sent. A
        function that fails dead-letters the batch's records under that view (reason
        ``transform``); the source view's rows are written all the same."""
        for derived, checker in self._derived[plan.view.name]:
            try:
                rows = written_outputs(derived.view, plan.view, table, EVENT_TIME)
            except TransformError as exc:
                log.error("%s", exc)
                for record in records:
                    self._dead_letters.send(record, derived.view.name, "transform", str(exc))
                self._metrics.dead_letters.labels(derived.view.name, "transform").inc(len(records))
                report.dead_letters += len(records)
                report.reasons["transform"] += len(records)
                continue
            outcome = checker.check(rows)
            report.values_nulled += outcome.total
            rows = outcome.nulled(rows)
            in_flight.writes.append(_Write(derived, rows, self._submit(derived, rows)))

    def _start_fold(
        self, plan: StreamPlan, records: list[Any], in_flight: _InFlight, report: IngestReport
    ) -> None:
        """An aggregation view's events: decoded (bad and late ones dead-lettered), then
        folded into tiles, each fenced by its partition and offset."""
        decoded = self._events[plan.view.name].decode([r.value for r in records])
        for reject in decoded.rejects:
            self._dead_letter(plan, records[reject.index], reject, report)
        if not decoded.table.num_rows:
            return
        chosen = [records[i] for i in decoded.sources]
        fences = [b"o:%s:%d" % (r.topic.encode(), r.partition) for r in chosen]
        offsets = [r.offset for r in chosen]
        write = _Write(plan, decoded.table, None, fences, offsets)
        try:
            write.pending = self._fold_pending(write)
        except OnlineStoreUnavailable:
            write.pending = None  # folded with retries when the batch is finished
        in_flight.writes.append(write)

    def _fold_pending(self, write: _Write) -> PendingFold:
        assert write.fences is not None and write.offsets is not None
        return self._store.tiles.fold(
            write.plan.view, write.table, event_time_column=EVENT_TIME,
            fences=write.fences, offsets=write.offsets,
        )  # fmt: skip

    def _submit(self, plan: StreamPlan, table: pa.Table) -> PendingWrite | None:
        try:
            return self._store.writer.submit(plan.view, table, event_time_column=EVENT_TIME)
        except OnlineStoreUnavailable:
            return None  # written with retries when the batch is finished

    def _finish(self, in_flight: _InFlight, report: IngestReport, stop: threading.Event) -> None:
        """Wait for Redis (retrying through outages), the dead letters, then commit."""
        for write in in_flight.writes:
            if write.fences is not None:
                self._finish_fold(write, report, stop)
                continue
            stats = None
            if isinstance(write.pending, PendingWrite):
                try:
                    stats = write.pending.result()
                except OnlineStoreUnavailable:
                    stats = None
            if stats is None:
                stats = self._write(write.plan, write.table, stop)
            self._record(write.plan, write.table, stats, report)
            if self._offline_log is not None and write.plan.view.on_demand is None:
                self._offline_log.append(write.plan.view.name, write.table, EVENT_TIME)
        self._dead_letters.flush(timeout=10)
        self._commit(in_flight.batch)
        report.batches += 1

    def _finish_fold(self, write: _Write, report: IngestReport, stop: threading.Event) -> None:
        """Wait for a fold; while Redis is unreachable, send it again with backoff (the
        fences make a fold that did land count once)."""
        delay = 0.1
        while True:
            try:
                if write.pending is None:
                    write.pending = self._fold_pending(write)
                assert isinstance(write.pending, PendingFold)
                stats = write.pending.result()
                break
            except OnlineStoreUnavailable as exc:
                write.pending = None
                self._metrics.redis_retries.inc()
                log.warning("Redis unreachable, retrying in %.1fs: %s", delay, exc)
                if stop.is_set() and delay >= _MAX_BACKOFF:
                    raise
                self._wait_paused(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
        report.events_folded += stats.folded
        report.events_replayed += stats.skipped
        self._metrics.events_folded.labels(write.plan.view.name).inc(stats.folded)
        self._metrics.events_replayed.labels(write.plan.view.name).inc(stats.skipped)

    def _apply_contracts(
        self, plan: StreamPlan, decoded: Decoded, report: IngestReport
    ) -> pa.Table:
        """Null values that break their field contract; reject rows where nulling cannot
        help (a not-null field that is null or breaks another rule)."""
        table = decoded.table
        outcome = self._checkers[plan.view.name].check(table)
        if not outcome.violations:
            return table
        not_null = {c.field for c in plan.contract.checked_fields if c.not_null}
        whole_row = np.zeros(table.num_rows, dtype=np.bool_)
        for violation in outcome:
            if violation.rule == Rule.NOT_NULL or violation.field in not_null:
                whole_row[violation.rows] = True
        for violation in outcome:
            for row in violation.rows.tolist():
                if whole_row[row]:
                    decoded.rejects.append(
                        Reject(decoded.sources[row], "contract",
                               f"field '{violation.field}' breaks {violation.rule.value}"),
                    )  # fmt: skip
                else:
                    report.values_nulled += 1
                    self._metrics.values_nulled.labels(
                        plan.view.name, violation.field, violation.rule.value
                    ).inc()
        keep = pa.array(~whole_row)
        return outcome.nulled(table).filter(keep)

    def _dead_letter(
        self, plan: StreamPlan, record: Any, reject: Reject, report: IngestReport
    ) -> None:
        self._dead_letters.send(record, plan.view.name, reject.reason, reject.detail)
        self._metrics.dead_letters.labels(plan.view.name, reject.reason).inc()
        report.dead_letters += 1
        report.reasons[reject.reason] += 1

    def _write(self, plan: StreamPlan, table: pa.Table, stop: threading.Event) -> WriteStats:
        """Write newer-wins; while Redis is unreachable, wait with backoff (partitions
        paused, still polling so the group keeps this member) and try again."""
        delay = 0.1
        while True:
            self._metrics.redis_retries.inc()
            try:
                return self._store.write(plan.view, table, event_time_column=EVENT_TIME)
            except OnlineStoreUnavailable as exc:
                log.warning("Redis unreachable, retrying in %.1fs: %s", delay, exc)
                if stop.is_set() and delay >= _MAX_BACKOFF:
                    # Shutting down with Redis gone: leave the batch uncommitted; the next
                    # ingestor of the group reads it again. Nothing is lost.
                    raise
                self._wait_paused(delay)
                delay = min(delay * 2, _MAX_BACKOFF)

    def _record(
        self, plan: StreamPlan, table: pa.Table, stats: WriteStats, report: IngestReport
    ) -> None:
        report.rows_written += stats.written
        report.skipped_older += stats.skipped_older
        features = len([f for f in plan.view.features if f.name not in plan.view.join_key_names])
        self._metrics.rows_written.labels(plan.view.name).inc(stats.written)
        self._metrics.values_written.labels(plan.view.name).inc(stats.written * features)
        now_us = time.time() * 1_000_000
        times = table.column(EVENT_TIME).cast(pa.int64()).to_numpy()
        if times.shape[0] > _FRESHNESS_SAMPLE:
            # One observation costs microseconds: a uniform sample per batch keeps the
            # histogram's shape without costing a tenth of the ingest time.
            times = times[:: times.shape[0] // _FRESHNESS_SAMPLE + 1]
        histogram = self._metrics.freshness.labels(plan.view.name)
        for age in ((now_us - times) / 1_000_000).tolist():
            histogram.observe(age)

    def _wait_paused(self, seconds: float) -> None:
        assignment = list(self._consumer.assignment())
        self._consumer.pause(*assignment)
        try:
            polled = self._consumer.poll(timeout_ms=int(seconds * 1000))
            # Partitions assigned by a rebalance meanwhile are not paused: keep their records.
            for partition, records in polled.items():
                self._stash.setdefault(partition, []).extend(records)
        finally:
            self._consumer.resume(*assignment)

    def _commit(self, batch: dict[Any, list[Any]]) -> None:
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        offsets = {
            partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)
            for partition, records in batch.items()
            if records
        }
        tries = 0
        while offsets:
            try:
                self._consumer.commit(offsets, timeout_ms=self._settings.commit_timeout_ms)
                return
            except CommitFailedError as exc:
                # The group rebalanced: another member owns these partitions now and reads
                # from the last committed offset. Replays are harmless.
                log.warning("commit skipped after a rebalance: %s", exc)
                return
            except KafkaError as exc:
                tries += 1
                self._metrics.kafka_retries.inc()
                log.warning("commit failed (broker unreachable?), retrying: %s", exc)
                time.sleep(min(0.2 * tries, _MAX_BACKOFF))

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < _LAG_EVERY:
            return
        self._last_lag = now
        assignment = list(self._consumer.assignment())
        self._metrics.assigned.set(len(assignment))
        if not assignment:
            return
        try:
            ends = self._consumer.end_offsets(assignment, timeout_ms=2000)
            for partition in assignment:
                position = self._consumer.position(partition, timeout_ms=2000)
                lag = max(0, ends.get(partition, position) - position)
                self._metrics.lag.labels(partition.topic, str(partition.partition)).set(lag)
        except Exception as exc:
            log.debug("lag not refreshed: %s", exc)
