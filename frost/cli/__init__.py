"""The ``frost`` command line.

Exit codes: 0 success, 2 bad input (flags, config, definitions, data), 1 any other failure.
Errors go to stderr prefixed ``frost: error:``: one line, or one line per problem when
``frost apply`` finds several bad contract tags. ``FROST_DEBUG=1`` adds tracebacks and logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from frost.cli import _commands
from frost.errors import ContractError, FrostError, ServiceStartError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frost",
        description="Frost: a fast, contract-aware feature store built on Feast.",
    )
    parser.add_argument(
        "--repo",
        metavar="DIR",
        default=None,
        help="Feast repo directory (default: $FROST_REPO, else . if it has a "
        "feature_store.yaml, else ./feature_repo)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands.REGISTRY:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_third_parties()
    try:
        result: int = args.run(args)
        return result
    except ContractError as exc:
        for issue in exc.issues:
            print(f"frost: error: invalid feature contract: {issue}", file=sys.stderr)
        return exc.exit_code
    except FrostError as exc:
        print(f"frost: error: {exc}", file=sys.stderr)
        if os.environ.get("FROST_DEBUG") and isinstance(exc, ServiceStartError):
            print(exc.details, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("frost: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `frost describe | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:  # the last line of defence: say what broke, keep exit code 1
        if os.environ.get("FROST_DEBUG"):
            traceback.print_exc()
        print(
            f"frost: internal error: {type(exc).__name__}: {exc} (set FROST_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


def _quiet_third_parties() -> None:
    # Feast warns on every import of a stream feature view and on deprecated options; users
    # of the CLI cannot act on those, so they are hidden unless FROST_DEBUG is set.
    if os.environ.get("FROST_DEBUG"):
        return
    # Feast installs its own warning filters when imported; import it first so ours win.
    import feast.stream_feature_view  # noqa: F401

    warnings.filterwarnings("ignore", category=RuntimeWarning, module="feast")
    warnings.filterwarnings("ignore", message="Stream feature views are experimental")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="feast")
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("feast").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
