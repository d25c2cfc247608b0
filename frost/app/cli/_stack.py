"""``frost demo``, ``frost up``/``frost down`` (a local stack) and ``frost produce-events``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frost.app.cli._args import positive_int

Subparsers = Any


def _source(args: argparse.Namespace) -> Path:
    return Path(args.repo) if args.repo else Path("feature_repo")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def register_demo(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "demo", help="run the example end to end on a throwaway local stack, then stop it"
    )
    parser.add_argument("--users", type=positive_int, default=2_000, help="players to generate")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".frost/demo"), help="where the demo's copy lives"
    )
    parser.add_argument(
        "--rate", type=_positive_float, default=300.0, help="live events per second"
    )
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from frost.app.demo import run

    return run(_source(args), args.workdir, users=args.users, rate=args.rate)


def register_up(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "up",
        help="start the local stack (Redis, broker, ingestor, server, live events); "
        "leave it running",
    )
    parser.add_argument("--users", type=positive_int, default=2_000, help="players to generate")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".frost/stack"), help="where the stack's copy lives"
    )
    parser.add_argument("--rate", type=_positive_float, default=50.0, help="live events per second")
    parser.set_defaults(run=run_up)


def run_up(args: argparse.Namespace) -> int:
    from frost.app.stack import STACK_FILE, LocalStack, now_minute
    from frost.errors import ConfigError

    if (args.workdir / STACK_FILE).is_file():
        raise ConfigError(f"a stack is already running from {args.workdir} (frost down first)")
    stack = LocalStack(args.workdir, detached=True)
    try:
        repo = stack.start_services(_source(args))
        stack.load_sample_data(args.users, now_minute())
        stack.start_streaming(args.rate, args.users)
        target = stack.start_server()
    except BaseException:
        stack.stop()
        raise
    info = stack.release()
    print(f"\nFrost is up (stopped by `frost down --workdir {args.workdir}`):")
    print(f"  repo        {repo.path}")
    print(f"  Redis       {info.redis}")
    print(f"  Kafka       {info.kafka}  (topics user_sessions, experience_events)")
    print(f"  gRPC        {target}")
    for name, url in info.metrics.items():
        print(f"  metrics     {url}  ({name})")
    print(f"  logs        {Path(info.workdir) / 'logs'}")
    print("Try:")
    print(f"  frost --repo {repo.path} get --service matchmaking --entity user_id=1000001 "
          "--entity experience_id=50001")  # fmt: skip
    return 0


def register_down(commands: Subparsers) -> None:
    parser = commands.add_parser("down", help="stop the local stack `frost up` started")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".frost/stack"), help="the stack's directory"
    )
    parser.set_defaults(run=run_down)


def run_down(args: argparse.Namespace) -> int:
    from frost.app.stack import stop_stack

    stopped = stop_stack(args.workdir)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def register_produce(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "produce-events", help="send live sample events to the example repo's Kafka topics"
    )
    parser.add_argument(
        "--bootstrap-servers", required=True, metavar="HOST:PORT", help="Kafka brokers"
    )
    parser.add_argument("--rate", type=_positive_float, default=100.0, help="events per second")
    parser.add_argument(
        "--seconds", type=_positive_float, default=None, help="stop after N seconds"
    )
    parser.add_argument("--users", type=positive_int, default=2_000, help="players to pick from")
    parser.add_argument(
        "--experiences", type=positive_int, default=None, help="experiences (default: users/10)"
    )
    parser.set_defaults(run=run_produce)


def run_produce(args: argparse.Namespace) -> int:
    import signal

    from frost.sample_events import EventSpec, produce

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    spec = EventSpec(users=args.users, experiences=args.experiences or max(20, args.users // 10))
    sent = produce(args.bootstrap_servers, rate=args.rate, seconds=args.seconds, spec=spec,
                   stop=lambda: bool(stopping))  # fmt: skip
    print(f"sent {sent:,} events")
    return 0


REGISTER = [register_demo, register_up, register_down, register_produce]
