"""On-demand feature views in serving: `frost serve` (gRPC) vs `feast serve` (HTTP), and
what an on-demand view costs Frost over serving its inputs as they are.

One redis-server and one copy of the example repo (feature_repo/, without its data) made
here, with an on-demand view and two feature services appended to the copy's
feature_services.py:

* ``bench_engagement``: a python-mode ``@on_demand_feature_view`` over two feature views,
  ``user_profile[["lifetime_spend_usd", "level"]]`` and
  ``user_activity_7d[["minutes_played_7d", "sessions_7d"]]``, and the request field
  ``basket_usd`` (the example repo's ``purchase_request``); three Float64 outputs;
* ``bench_odfv``: ``user_profile[["country", "is_premium"]]``,
  ``user_activity_7d[["purchases_7d", "win_rate_7d"]]`` and every output of
  ``bench_engagement``;
* ``bench_plain``: the same plain features plus the view's four inputs, served directly.

The latest rows of --entities users (``frost.sample_data``, no nulls, no contract-breaking
values, event times up to now) are written with Frost's writer. Request data travels as
each server takes it: in ``GetOnlineFeaturesRequest.request_context`` for `frost serve`,
next to the join key in the JSON ``entities`` of `feast serve` (feast/feature_server.py
hands ``entities`` to ``get_online_features`` as entity rows, where request fields are
taken from).

Before any load, the bodies h2load replays are sent once to each server and checked:
Frost's on-demand outputs equal Feast's (its SDK in process and `feast serve`) within a
relative 1e-9, Frost's plain features equal the SDK's byte for byte, every value of every
server is PRESENT. Then, with h2load (helpers of bench_serve.py):

1. `frost serve` vs `feast serve`, 1 worker each, on ``bench_odfv`` at batches of 1 and
   100 entity rows: maximum requests/s (many requests in flight), and p50/p99 at a fixed
   offered load both sustain (min(--rate, half the slower server's maximum); 1 connection,
   1 request in flight, at least --min-samples requests per run);
2. `frost serve` on ``bench_odfv`` vs ``bench_plain`` at batches of 1 and 100 (the target
   is on batch 100): p50/p99 back to back (1 request in flight) and maximum requests/s,
   the two services alternating which goes first in each repeat.

Medians of --repeat runs, every run listed. The defaults take about 7 minutes on 2 cores:

    python benchmarks/bench_on_demand.py --write   # also replaces the section in RESULTS.md
    python benchmarks/bench_on_demand.py --entities 5000 --seconds 2 --repeat 1  # smoke run

Needs h2load (Debian's nghttp2-client; `make bench` installs it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import struct
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bench_serve as b  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## On-demand views in serving"
ODFV_SERVICE, PLAIN_SERVICE, ODFV = "bench_odfv", "bench_plain", "bench_engagement"
OUTPUTS = ("spend_per_minute", "minutes_per_session", "basket_share")
REQUEST_FIELD = "basket_usd"
BATCHES = (1, 100)
RATIO_BATCH = 100  # where the target on the on-demand view's cost applies
REL_TOL = 1e-9
PRESENT = 1

# Appended to the copy's feature_services.py (which imports FeatureService and the views).
# The function uses nothing but its argument: Frost runs its source text on its own.
SERVICES_SOURCE = f'''

# -- appended by benchmarks/bench_on_demand.py ------------------------------------------------
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from on_demand_views import purchase_request


@on_demand_feature_view(
    sources=[
        user_profile[["lifetime_spend_usd", "level"]],
        user_activity_7d[["minutes_played_7d", "sessions_7d"]],
        purchase_request,
    ],
    schema=[Field(name=name, dtype=Float64) for name in {list(OUTPUTS)!r}],
    mode="python",
)
def {ODFV}(inputs: dict) -> dict:
    per_minute, per_session, share = [], [], []
    for spent, level, minutes, sessions, basket in zip(
        inputs["lifetime_spend_usd"],
        inputs["level"],
        inputs["minutes_played_7d"],
        inputs["sessions_7d"],
        inputs["{REQUEST_FIELD}"],
    ):
        known = spent is not None and minutes is not None
        per_minute.append(spent / (minutes + 1.0) if known else None)
        per_session.append(minutes / sessions if minutes is not None and sessions else None)
        total = (basket or 0.0) + (spent or 0.0)
        share.append(basket / total if basket is not None and total > 0 else None)
    return {{
        "spend_per_minute": per_minute,
        "minutes_per_session": per_session,
        "basket_share": share,
    }}


{ODFV_SERVICE} = FeatureService(
    name="{ODFV_SERVICE}",
    features=[
        user_profile[["country", "is_premium"]],
        user_activity_7d[["purchases_7d", "win_rate_7d"]],
        {ODFV},
    ],
)

{PLAIN_SERVICE} = FeatureService(
    name="{PLAIN_SERVICE}",
    features=[
        user_profile[["country", "is_premium", "lifetime_spend_usd", "level"]],
        user_activity_7d[["purchases_7d", "win_rate_7d", "minutes_played_7d", "sessions_7d"]],
    ],
)
'''


# -- the repo and its data -----------------------------------------------------------------------


def make_repo(work: Path, redis_connection: str) -> Path:
    """A copy of feature_repo/ pointed at ``redis_connection``, the services appended,
    applied with `frost apply`."""
    from frost.app.stack import prepare_workspace

    repo = prepare_workspace(ROOT / "feature_repo", work, redis_connection)
    services = repo / "feature_services.py"
    services.write_text(services.read_text() + SERVICES_SOURCE)
    b.apply_repo(repo)
    return repo


def load_users(repo: Path, users: int) -> int:
    """The latest user_profile and user_activity_7d rows of ``users`` users, clean and
    fresh, written with Frost's writer; the first user id."""
    from frost import sample_data
    from frost.online import OnlineStore
    from frost.repo import FeatureRepo

    spec = sample_data.SampleSpec(
        users=users, days=1, end=datetime.now(UTC), null_rate=0.0, dirty_rate=0.0
    )
    feature_repo = FeatureRepo(repo)
    views = feature_repo.views()
    with OnlineStore.from_config(feature_repo.online_config, feature_repo.project) as store:
        for name, table in (
            ("user_profile", sample_data.user_profile(spec)),
            ("user_activity_7d", sample_data.user_activity_7d(spec)),
        ):
            stats = store.write(views[name], table)
            assert stats.written == users, stats
    return sample_data.FIRST_USER_ID


@dataclass(frozen=True)
class Rows:
    """The entity rows and request data of the one body h2load replays per batch size."""

    ids: list[int]
    baskets: list[float]


def draw_rows(users: int, first_id: int, batch: int) -> Rows:
    ids = b.draw_ids(users, batch, 1, seed=2000 + batch)[0] + first_id
    baskets = np.round(np.random.default_rng(batch).uniform(1.0, 250.0, batch), 2)
    return Rows(ids.tolist(), baskets.tolist())


# -- targets: one checked request per server, service and batch ----------------------------------


def grpc_request(service: str, rows: Rows, with_request_data: bool) -> Any:
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesRequest
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    request = GetOnlineFeaturesRequest(feature_service=service)
    request.entities["user_id"].CopyFrom(RepeatedValue(val=[Value(int64_val=u) for u in rows.ids]))
    if with_request_data:  # a service without on-demand views takes none
        request.request_context[REQUEST_FIELD].CopyFrom(
            RepeatedValue(val=[Value(double_val=x) for x in rows.baskets])
        )
    return request


def frost_target(port: int, service: str, rows: Rows, work: Path) -> tuple[b.Target, Any]:
    """The gRPC-framed body for h2load, and Frost's reply to it."""
    import grpc
    from feast.protos.feast.serving.ServingService_pb2_grpc import ServingServiceStub

    request = grpc_request(service, rows, with_request_data=service == ODFV_SERVICE)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = ServingServiceStub(channel).GetOnlineFeatures(request, timeout=30)
    message = request.SerializeToString()
    body = work / f"grpc-{service}-{len(rows.ids)}.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    headers = ("content-type: application/grpc", "te: trailers")
    url = f"http://127.0.0.1:{port}{b.GRPC_PATH}"
    name = f"Frost gRPC server, {service}"
    return b.Target(name, url, body, headers, False, 5 + reply.ByteSize()), reply


def feast_target(port: int, rows: Rows, work: Path) -> tuple[b.Target, dict[str, Any]]:
    """The JSON body of `feast serve` for ``bench_odfv`` (request data next to the join key),
    and its reply; sent twice, since h2load checks every response's size against it."""
    url = f"http://127.0.0.1:{port}/get-online-features"
    entities = {"user_id": rows.ids, REQUEST_FIELD: rows.baskets}
    body = json.dumps({"feature_service": ODFV_SERVICE, "entities": entities}).encode()
    raws = []
    for _ in range(2):
        request = urllib.request.Request(url, body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            raws.append(response.read())
    if len(raws[0]) != len(raws[1]):
        raise SystemExit(f"feast serve: two replies of {len(raws[0])} and {len(raws[1])} bytes")
    path = work / f"http-{len(rows.ids)}.json"
    path.write_bytes(body)
    headers = ("content-type: application/json",)
    target = b.Target("feast serve (HTTP), bench_odfv", url, path, headers, True, len(raws[0]))
    return target, json.loads(raws[0])


# -- correctness ---------------------------------------------------------------------------------


def sdk_reply(store: Any, service: str, rows: Rows) -> Any:
    entity_rows: dict[str, list[Any]] = {"user_id": rows.ids}
    if service == ODFV_SERVICE:
        entity_rows[REQUEST_FIELD] = rows.baskets
    features = store.get_feature_service(service)
    return store.get_online_features(features=features, entity_rows=entity_rows).proto


def check_frost(service: str, reply: Any, expected: Any, rows: int) -> int:
    """Frost's reply against the SDK's: the same feature names (compared as a set: the
    SDK orders the features of one view differently from one process to the next), every
    value PRESENT; plain features byte for byte, on-demand outputs within ``REL_TOL``.
    Returns the number of on-demand values compared."""
    from feast.protos.feast.types.Value_pb2 import Value

    got, want = b.columns_of(reply), b.columns_of(expected)
    if sorted(got) != sorted(want):
        raise SystemExit(f"{service}: Frost serves {list(got)}, Feast {list(want)}")
    compared = 0
    for name, (values, statuses) in got.items():
        if name == "user_id":
            continue
        if len(values) != rows or set(statuses) != {PRESENT}:
            raise SystemExit(f"{service}, Frost's '{name}': {len(values)} values, {statuses}")
        if set(want[name][1]) != {PRESENT}:
            raise SystemExit(f"{service}, the SDK's '{name}': statuses {want[name][1]}")
        if name not in OUTPUTS:
            if values != want[name][0]:
                raise SystemExit(f"{service}: Frost's '{name}' differs from Feast's SDK")
            continue
        ours = [Value.FromString(v) for v in values]
        theirs = [Value.FromString(v) for v in want[name][0]]
        for row, (a, e) in enumerate(zip(ours, theirs, strict=True)):
            if a.WhichOneof("val") != "double_val" or e.WhichOneof("val") != "double_val":
                raise SystemExit(f"{service}, '{name}' row {row}: {a} vs the SDK's {e}")
            close_or_exit(f"'{name}' row {row}, Frost vs the SDK", a.double_val, e.double_val)
            compared += 1
    return compared


def check_feast_serve(reply: dict[str, Any], expected: Any, rows: int) -> int:
    """`feast serve`'s JSON against the SDK's reply: the same names (as a set), every value
    PRESENT, on-demand outputs within ``REL_TOL`` (of the SDK, hence of Frost's)."""
    from feast.protos.feast.types.Value_pb2 import Value

    names, results = reply["metadata"]["feature_names"], reply["results"]
    want = b.columns_of(expected)
    if sorted(names) != sorted(want):
        raise SystemExit(f"feast serve serves {names}, the SDK {list(want)}")
    compared = 0
    for name, result in zip(names, results, strict=True):
        if name == "user_id":
            continue
        if set(result["statuses"]) != {"PRESENT"} or len(result["values"]) != rows:
            raise SystemExit(f"feast serve's '{name}': statuses {set(result['statuses'])}")
        if name in OUTPUTS:
            for row, (value, raw) in enumerate(zip(result["values"], want[name][0], strict=True)):
                sdk = Value.FromString(raw).double_val
                close_or_exit(f"'{name}' row {row}, feast serve vs the SDK", value, sdk)
                compared += 1
    return compared


def close_or_exit(where: str, got: float, want: float) -> None:
    if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=0.0):
        raise SystemExit(f"{where}: {got!r} vs {want!r}")


# -- measurements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """The median of the runs of one contender, and the runs."""

    median: b.Measured
    runs: tuple[b.Measured, ...]


def of_runs(runs: Sequence[b.Measured]) -> Result:
    return Result(b.median_of(runs), tuple(runs))


def run(ctx: b.Context, target: b.Target, load: b.Load, seconds: int) -> b.Measured:
    return b.h2load(target, load, seconds, b.log_path(ctx))


def repeated(ctx: b.Context, target: b.Target, load: b.Load, seconds: int) -> Result:
    return of_runs([run(ctx, target, load, seconds) for _ in range(ctx.args.repeat)])


@dataclass(frozen=True)
class ServerRow:
    """One server at one batch size: max req/s from full load, latencies at a fixed load."""

    peak: Result
    paced: Result

    @property
    def measured(self) -> b.Measured:
        return b.combined(self.peak.median, self.paced.median)


def bench_servers(
    ctx: b.Context, targets: Sequence[b.Target]
) -> tuple[float, int, list[ServerRow]]:
    """Both servers on one body: the offered load, seconds per paced run, and the rows."""
    args = ctx.args
    peaks = [repeated(ctx, t, b.max_load(args, t), args.seconds) for t in targets]
    offered = b.offered_rate(args.rate, [peak.median.max_rps for peak in peaks])
    fixed = b.Load(clients=1, streams=1, total_rps=offered)
    seconds = max(args.seconds, math.ceil(args.min_samples / offered))
    paced = [repeated(ctx, t, fixed, seconds) for t in targets]
    return offered, seconds, [ServerRow(p, q) for p, q in zip(peaks, paced, strict=True)]


@dataclass(frozen=True)
class ServiceRow:
    """One Frost service at one batch size: back-to-back latencies and max req/s."""

    back_to_back: Result
    peak: Result


def bench_overhead(ctx: b.Context, odfv: b.Target, plain: b.Target) -> list[ServiceRow]:
    """Frost on both services, alternating which goes first in each repeat."""
    runs: dict[str, tuple[list[b.Measured], list[b.Measured]]] = {
        odfv.name: ([], []),
        plain.name: ([], []),
    }
    for repeat in range(ctx.args.repeat):
        for target in (odfv, plain) if repeat % 2 == 0 else (plain, odfv):
            closed, peaks = runs[target.name]
            closed.append(run(ctx, target, b.Load(clients=1, streams=1), ctx.args.seconds))
            peaks.append(run(ctx, target, b.max_load(ctx.args, target), ctx.args.seconds))
    return [ServiceRow(of_runs(runs[t.name][0]), of_runs(runs[t.name][1])) for t in (odfv, plain)]


# -- report --------------------------------------------------------------------------------------


@dataclass
class Report:
    args: argparse.Namespace
    machine: str
    first_id: int
    compared: int = 0
    servers: dict[int, tuple[float, int, list[ServerRow]]] | None = None
    overhead: dict[int, list[ServiceRow]] | None = None
    load_average: float = 0.0  # 1-minute, at the start
    load_after: float = 0.0  # 5-minute, at the end
    seconds_total: float = 0.0

    def errors(self) -> int:
        results = [r for _, _, rows in (self.servers or {}).values() for r in rows]
        total = sum(r.peak.median.errors + r.paced.median.errors for r in results)
        rows = [r for pair in (self.overhead or {}).values() for r in pair]
        return total + sum(r.back_to_back.median.errors + r.peak.median.errors for r in rows)


def runs_text(result: Result, value: Callable[[b.Measured], float], digits: int) -> str:
    return ", ".join(f"{value(r):,.{digits}f}" for r in result.runs)


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def markdown(report: Report) -> str:
    args = report.args
    lines = [
        f"{SECTION} ({datetime.now(UTC):%Y-%m-%d})",
        "",
        "```",
        " ".join([Path(sys.executable).name, *sys.argv]),
        "```",
        "",
        f"Machine: {report.machine}. Data: the example repo (feature_repo/) copied, "
        f"{args.entities:,} users' latest `user_profile` and `user_activity_7d` rows "
        "(`frost.sample_data`, no nulls, no contract-breaking values, fresh) written with "
        "Frost's writer into one redis-server. The whole run took "
        f"{report.seconds_total / 60:.1f} min. Load average (all work on the machine, this "
        f"run's included): 1-minute {report.load_average:.2f} at the start, 5-minute "
        f"{report.load_after:.2f} at the end.",
        "",
        f"- `{ODFV}`: a python-mode on-demand view over two feature views, "
        '`user_profile[["lifetime_spend_usd", "level"]]` and '
        '`user_activity_7d[["minutes_played_7d", "sessions_7d"]]`, and the request field '
        f"`{REQUEST_FIELD}`; 3 Float64 outputs ({', '.join(f'`{o}`' for o in OUTPUTS)}), "
        "a loop over the rows in Python.",
        f"- `{ODFV_SERVICE}`: `user_profile[country, is_premium]`, "
        f"`user_activity_7d[purchases_7d, win_rate_7d]` and the 3 outputs of `{ODFV}`. "
        f"`{PLAIN_SERVICE}`: the same 4 plain features plus the view's 4 inputs, served "
        "directly (no request data).",
        "- Request data: `request_context` for `frost serve`; for `feast serve`, next to "
        "`user_id` in the JSON `entities` (feast/feature_server.py passes `entities` to "
        "`get_online_features` as the entity rows, where request fields are read from).",
        "- Checked before any load, on every body h2load replays: Frost's on-demand outputs "
        "equal the Feast SDK's and `feast serve`'s within a relative "
        f"{REL_TOL:g} ({report.compared:,} values compared), Frost's plain features equal the "
        "SDK's byte for byte, every value of every server PRESENT. Every h2load response "
        "was checked for status and size.",
        "- 1 worker per server (`feast serve --max-requests "
        f"{args.feast_max_requests}`). Max req/s: h2load with many requests in flight "
        f"(gRPC h2c: -c {args.grpc_clients} -m {args.grpc_streams}; HTTP/1.1: "
        f"-c {args.http_clients}), about {args.seconds} s of requests after "
        f"{b.WARM_UP_SECONDS} s of warm-up. p50/p99 from h2load's per-request log, send to "
        "last byte, 1 connection with 1 request in flight: 'paced' at a fixed offered load "
        f"both servers sustain (min({args.rate:g} req/s, half the slower server's maximum)), "
        f"at least {args.min_samples} requests per run; 'back to back' sends the next "
        "request when the last one is answered.",
        f"- Medians of {args.repeat} run(s), every run listed. h2load replays one body per "
        "server, service and batch size (the same entities and request data each time). "
        "Load generator, servers and Redis share the machine's cores.",
    ]
    if report.servers:
        lines += servers_table(report.servers)
    if report.overhead:
        lines += overhead_table(report.overhead)
    lines += ratios(report)
    lines.append("")
    return "\n".join(lines)


def servers_table(servers: dict[int, tuple[float, int, list[ServerRow]]]) -> list[str]:
    lines = [
        "",
        f"### `frost serve` vs `feast serve`, feature service `{ODFV_SERVICE}`",
        "",
        "| batch | server | max req/s per worker | rows/s | max req/s, runs | p50 ms | p99 ms "
        "| p50 ms, runs | latencies measured | requests | errors |",
        "|---:|---|---:|---:|---|---:|---:|---|---|---:|---:|",
    ]
    for batch, (offered, seconds, rows) in servers.items():
        for row in rows:
            m = row.measured
            flag = "" if m.sustained else " (offered load NOT sustained)"
            lines.append(
                f"| {batch} | {m.contender.split(',')[0]} | {m.max_rps:,.0f} "
                f"| {m.max_rps * batch:,.0f} | {runs_text(row.peak, lambda r: r.max_rps, 0)} "
                f"| {m.p50_ms:.2f} | {m.p99_ms:.2f} "
                f"| {runs_text(row.paced, lambda r: r.p50_ms, 2)} "
                f"| paced at {m.achieved_rps or 0:,.0f} of {offered:g} req/s offered, "
                f"{seconds} s{flag} | {m.requests:,} | {m.errors} |"
            )
    return lines


def overhead_table(overhead: dict[int, list[ServiceRow]]) -> list[str]:
    lines = [
        "",
        f"### Frost: `{ODFV_SERVICE}` vs `{PLAIN_SERVICE}`",
        "",
        "| batch | service | p50 ms | p99 ms | p50 ms, runs | max req/s per worker "
        "| max req/s, runs | requests | errors |",
        "|---:|---|---:|---:|---|---:|---|---:|---:|",
    ]
    for batch, row in ((batch, row) for batch, rows in overhead.items() for row in rows):
        closed, peak = row.back_to_back.median, row.peak.median
        lines.append(
            f"| {batch} | `{closed.contender.split(', ')[1]}` | {closed.p50_ms:.2f} "
            f"| {closed.p99_ms:.2f} "
            f"| {runs_text(row.back_to_back, lambda r: r.p50_ms, 2)} | {peak.max_rps:,.0f} "
            f"| {runs_text(row.peak, lambda r: r.max_rps, 0)} "
            f"| {closed.requests + peak.requests:,} | {closed.errors + peak.errors} |"
        )
    lines.append("")
    lines.append(
        "p50/p99 back to back (1 request in flight); max req/s at full load; the two services "
        "alternate which runs first in each repeat."
    )
    return lines


def ratios(report: Report) -> list[str]:
    lines = ["", "### Ratios", ""]
    for batch, (_, _, rows) in (report.servers or {}).items():
        feast, frost = (row.measured for row in rows)
        ratio = frost.max_rps / feast.max_rps
        target = f" (target >= 15x: {verdict(ratio >= 15)})" if batch == 1 else " (no target)"
        p50 = feast.p50_ms / frost.p50_ms
        lines.append(
            f"- Frost max req/s / feast serve max req/s, `{ODFV_SERVICE}`, batch {batch}: "
            f"**{ratio:.1f}x**{target}; feast serve p50 / Frost p50, paced: {p50:.1f}x"
        )
    for batch, rows in (report.overhead or {}).items():
        odfv, plain = (row.back_to_back.median for row in rows)
        ratio = odfv.p50_ms / plain.p50_ms
        target = f" (target <= 1.5x: {verdict(ratio <= 1.5)})" if batch == RATIO_BATCH else ""
        peak = rows[0].peak.median.max_rps / rows[1].peak.median.max_rps
        lines.append(
            f"- Frost p50 `{ODFV_SERVICE}` / `{PLAIN_SERVICE}`, batch {batch}, back to back: "
            f"**{ratio:.2f}x**{target}; p99 {odfv.p99_ms / plain.p99_ms:.2f}x; "
            f"max req/s {peak:.2f}x"
        )
    lines += [
        "",
        f"Failed, errored or wrong-sized responses in all h2load runs: {report.errors()}.",
    ]
    return lines


def write_section(text: str, section_title: str = SECTION) -> None:
    """Replace the section in RESULTS.md (up to the next `## ` heading), or append it."""
    current = RESULTS.read_text()
    pattern = re.compile(rf"^{re.escape(section_title)}.*?(?=^## |\Z)", re.M | re.S)
    section = text.strip() + "\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _: section + "\n", current, count=1).rstrip() + "\n"
    else:
        updated = current.rstrip() + "\n\n" + section
    RESULTS.write_text(updated)


# -- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=100_000, help="users loaded")
    parser.add_argument("--seconds", type=int, default=5, help="per h2load run")
    parser.add_argument("--rate", type=float, default=200, help="fixed offered load, req/s")
    parser.add_argument(
        "--min-samples", type=int, default=100, help="requests per paced run, at least"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--grpc-clients", type=int, default=8, help="h2load -c, max load")
    parser.add_argument("--grpc-streams", type=int, default=16, help="h2load -m, max load")
    parser.add_argument("--http-clients", type=int, default=16, help="h2load -c, max load")
    parser.add_argument(
        "--feast-max-requests", type=int, default=0,
        help="feast serve --max-requests (0: never restart the worker; Feast's default 1000)",
    )  # fmt: skip
    parser.add_argument(
        "--write", action="store_true", help=f"replace '{SECTION}' in benchmarks/RESULTS.md"
    )
    return parser.parse_args()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    args = parse_args()
    if not b.frost_serve_available():
        raise SystemExit("`frost serve` is missing")
    from frost.services import RedisServer, free_port

    started = time.perf_counter()
    load_average = os.getloadavg()[0]
    with (
        b.terminated_as_exit(),
        RedisServer().start() as redis_server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        client = redis.Redis(port=redis_server.port)
        repo = make_repo(work, redis_server.connection_string)
        first_id = load_users(repo, args.entities)
        say(f"repo applied, {args.entities:,} users loaded: {time.perf_counter() - started:.0f} s")
        ctx = b.Context(args, repo, work, client, b.feast_store(repo), free_port(), free_port())
        report = Report(args, b.machine_info(client), first_id, load_average=load_average)
        feast = b.start_feast_serve(repo, ctx.feast_port, args.feast_max_requests)
        try:
            assert ctx.frost_port is not None
            frost = b.start_frost_serve(repo, ctx.frost_port)
            try:
                run_all(ctx, report, ctx.frost_port, feast)
            finally:
                frost.stop()
        finally:
            feast.stop()
    report.seconds_total = time.perf_counter() - started
    report.load_after = os.getloadavg()[1]
    text = markdown(report)
    print(text)
    if args.write:
        write_section(text)
        say(f"wrote '{SECTION}' in {RESULTS}")
    return 1 if report.errors() else 0


def run_all(ctx: b.Context, report: Report, frost_port: int, feast: b.Server) -> None:
    args = ctx.args
    bodies: dict[int, tuple[b.Target, b.Target]] = {}
    plain: dict[int, b.Target] = {}
    for batch in sorted({*BATCHES, RATIO_BATCH}):
        rows = draw_rows(args.entities, report.first_id, batch)
        http, http_reply = feast_target(ctx.feast_port, rows, ctx.work)
        grpc, grpc_reply = frost_target(frost_port, ODFV_SERVICE, rows, ctx.work)
        expected = sdk_reply(ctx.store, ODFV_SERVICE, rows)
        report.compared += check_frost(ODFV_SERVICE, grpc_reply, expected, batch)
        report.compared += check_feast_serve(http_reply, expected, batch)
        bodies[batch] = (http, grpc)
        plain[batch], plain_reply = frost_target(frost_port, PLAIN_SERVICE, rows, ctx.work)
        expected = sdk_reply(ctx.store, PLAIN_SERVICE, rows)
        check_frost(PLAIN_SERVICE, plain_reply, expected, batch)
    say(f"checked: {report.compared} on-demand values equal across Frost, the SDK, feast serve")
    report.servers = {}
    for batch in BATCHES:
        report.servers[batch] = bench_servers(ctx, bodies[batch])
        say(f"batch {batch}: {[row.measured for row in report.servers[batch][2]]}")
    feast.stop()  # its worker would otherwise share the cores with the next runs
    report.overhead = {}
    for batch in sorted(plain):
        report.overhead[batch] = bench_overhead(ctx, bodies[batch][1], plain[batch])
        say(f"overhead, batch {batch}: {[r.back_to_back.median for r in report.overhead[batch]]}")


if __name__ == "__main__":
    sys.exit(main())
