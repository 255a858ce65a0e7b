"""The "Every setting" table of docs/configuration.md, made from the settings' declarations.

The page's prose is written by hand; the table between :data:`BEGIN` and :data:`END` is this module's output,
so that a setting's type, default, flag, variable and meaning on the page are the ones the code has. A test
fails when the page is stale; to regenerate it::

    python -m pytest_lipsync.config.reference --write            # docs/configuration.md in place
    python -m pytest_lipsync.config.reference [PAGE]             # the regenerated page on stdout
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_lipsync.config.table import Entry, entries

PAGE = Path("docs") / "configuration.md"
COMMAND = "python -m pytest_lipsync.config.reference --write"
BEGIN = f"<!-- generated from the settings' declarations by `{COMMAND}`: edit those, not this table -->"
END = "<!-- end of the generated table -->"
_HEADER = ("key", "type", "default", "flag", "environment variable", "meaning")
_NAMED_BY_METAVAR = {"PATH": "path", "DIR": "directory"}


def table_lines() -> list[str]:
    """The Markdown table: a header, its rule and one row per setting, in declaration order."""
    lines = [_row(_HEADER), _row(("---",) * len(_HEADER))]
    for entry in entries():
        cells = (f"`{entry.key}`", _type(entry), _default(entry), f"`{entry.flag}`", f"`{entry.variable}`")
        lines.append(_row((*cells, _meaning(entry))))
    return lines


def render(page: str) -> str:
    """``page`` with the text between its markers replaced by the current table."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page has no generated table: put the markers\n{BEGIN}\n{END}\nwhere it goes")
    return "\n".join([head + BEGIN, "", *table_lines(), "", END + tail])


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _type(entry: Entry) -> str:
    if entry.about.kind:
        return entry.about.kind
    kind = entry.value_type
    if entry.choices:
        quoted = [f'`"{choice}"`' for choice in entry.choices]
        return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
    if kind is bool:
        return "boolean"
    if kind in (int, float):
        noun = "integer" if kind is int else "number"
        return noun if entry.accepted is None else entry.accepted.phrase(noun)
    return _NAMED_BY_METAVAR.get(entry.about.metavar or "", "string")


def _default(entry: Entry) -> str:
    """As TOML writes it; an unset default says what it means."""
    value = entry.default
    if value is None:
        return f"unset: {entry.about.unset}" if entry.about.unset else "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    return f"`{value}`"


def _meaning(entry: Entry) -> str:
    sentence = entry.help[0].upper() + entry.help[1:] + "."
    return f"{sentence} {entry.about.more}" if entry.about.more else sentence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_lipsync.config.reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("page", nargs="?", type=Path, default=PAGE, help=f"the page (default: {PAGE})")
    parser.add_argument("--write", action="store_true", help="rewrite the page in place instead of printing it")
    args = parser.parse_args(argv)
    try:
        text = render(args.page.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: {args.page}: {exc}\n")
    if args.write:
        args.page.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
