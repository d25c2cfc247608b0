"""The CLI reference (docs/cli.md), written from the argument parser itself:

    python -m frost.app.cli._reference > docs/cli.md      (make docs)

tests/test_docs.py fails when docs/cli.md and the parser disagree.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

_HEADER = """# CLI reference

Generated from the parser (`make docs`); every command takes the global `--repo DIR`
(default: `$FROST_REPO`, else `.` when it has a `feature_store.yaml`, else `./feature_repo`).

Exit codes: 0 success; 1 a failure (an unreachable service, a failed job, a failing quality
check); 2 bad input (flags, config, definitions, data), with one line naming what and where.
`FROST_DEBUG=1` adds tracebacks and third-party warnings.
"""


def render(parser: argparse.ArgumentParser) -> str:
    parts = [_HEADER]
    for name, sub, help_text in _subcommands(parser):
        parts.append(_command(f"frost {name}", sub, help_text))
    return "\n".join(parts)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, Any, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                nested = _subcommands(sub)
                if nested:
                    found += [(f"{name} {n}", s, h) for n, s, h in nested]
                else:
                    found.append((name, sub, helps.get(name, "")))
    return found


def _command(title: str, parser: argparse.ArgumentParser, help_text: str) -> str:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        flags = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}`"
        if action.metavar and action.option_strings:
            flags += f" `{action.metavar}`"
        elif action.nargs != 0 and action.option_strings and action.choices:
            flags += " `" + "|".join(str(c) for c in action.choices) + "`"
        default = action.default
        plain = isinstance(default, str | int | float | Path) and default is not False
        shown = f"`{default}`" if plain and default != argparse.SUPPRESS else ""
        required = "yes" if action.required else ""
        text = (action.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {flags} | {required} | {shown} | {text} |")
    table = ["| option | required | default | meaning |", "|---|---|---|---|", *rows]
    body = "\n".join(table) if rows else "No options."
    return f"## `{title}`\n\n{help_text}\n\n{body}\n"


if __name__ == "__main__":
    from frost.app.cli._main import build_parser

    print(render(build_parser()), end="")
