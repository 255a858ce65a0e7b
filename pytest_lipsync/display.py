"""Video names (and messages that quote them) as they may be shown on one line of a log.

A video's key comes from a file name or a report, which anyone who can add a file controls. Printed as is,
a newline in it starts a new line of the CI log, and a GitHub Actions runner executes a line that starts with
``::`` (after spaces) as a workflow command, ``##[`` in its older syntax; a bidirectional override
(U+202E) makes a name read backwards; an undecodable byte (kept by Python as a lone surrogate) cannot even
be encoded for printing. Every place that prints a key or a message to a terminal, a log or an annotation
passes it through :func:`display_name`; the JSON, the baseline and the verdicts keep the real key, and the
HTML report and the job summary escape for their own formats on top of this.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What a runner reads as a command at the start of a line: the first character is escaped.
_COMMANDS = ("::", "##")


def display_name(text: str) -> str:
    """``text`` with every character ``str.isprintable`` rejects (controls, line and paragraph separators,
    bidirectional and other format characters, surrogates; not the space) written as a Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``), and a leading ``::`` or ``##`` escaped (``\\x3a:``).

    A backslash is left as it is, so that ordinary names read as they are; a name that already contains
    ``\\u202e`` as text is shown the same as one that contains the character, and the JSON tells them apart.
    """
    shown = "".join(char if char.isprintable() else _escaped(char) for char in text)
    start = len(shown) - len(shown.lstrip(" "))
    if shown[start:].startswith(_COMMANDS):
        shown = f"{shown[:start]}{_escaped(shown[start])}{shown[start + 1 :]}"
    return shown


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as ``surrogateescape`` keeps it: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def plural(count: int, noun: str) -> str:
    """``1 video``, ``2 videos``: counts in the tables and summaries read as English whatever the number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
