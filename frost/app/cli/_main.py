"""The parser and the entry point: exit codes and error lines."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import TextIO

from frost.app.cli import _commands
from frost.errors import ContractError, FrostError, ServiceStartError


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
    # of the CLI cannot act on those, so they are hidden unless FROST_DEBUG is set. Feast
    # installs its own warning filters when imported, so filters alone would lose; the
    # display hook is replaced instead, which also avoids importing Feast up front.
    if os.environ.get("FROST_DEBUG"):
        return
    show = warnings.showwarning

    def show_own_warnings(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        third_party = any(f"{os.sep}{name}{os.sep}" in filename for name in _QUIET_PACKAGES)
        if third_party or issubclass(category, DeprecationWarning | FutureWarning):
            return
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_own_warnings
    logging.getLogger("feast").setLevel(logging.ERROR)


_QUIET_PACKAGES = ("feast", "pyspark", "dask", "pandas", "pyarrow")


if __name__ == "__main__":
    sys.exit(main())
