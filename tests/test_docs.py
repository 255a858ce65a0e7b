"""The documentation cannot rot: its links, anchors, commands, flags, paths and reference tables are checked
against the repository and the real command line, in every Markdown page a user reads (README.md,
CONTRIBUTING.md, CHANGELOG.md, docs/*.md):

- every relative link resolves to a file of the repository, and every ``#anchor`` to a heading of its target
  (GitHub's slug rules) or an explicit ``<a id="...">``;
- no link leaves the repository: no URL, no ``../`` above its root, nothing under a ``shared/`` folder;
- every ``lipsync ...`` command in a shell, console, YAML, Dockerfile or untagged code block parses with the
  real argparse parser (``cli._parser()``); synopses with ``[...]`` go in ``text`` blocks, which are not parsed;
- every ``--lipsync-*`` flag written anywhere is a real pytest flag;
- every repository path written in backticks (``pytest_lipsync/...``, ``tests/...``, ...) exists;
- docs/configuration.md has one row per setting with its flag, variable and default, and is what the
  settings' declarations generate; docs/errors.md one row
  per error kind with an example message; docs/cli.md a section per subcommand naming each of its options;
  docs/ci.md shows the workflow ``lipsync init`` writes; the README stays a short front door.

Fast: it reads text and builds the parser; it scores nothing and imports no model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
# Subcommands the docs already show while they are being written on another branch: their commands are
# skipped (not failed) until the parser has them, and checked like every other command from then on.
PENDING_SUBCOMMANDS = frozenset({"demo"})
# Code blocks whose lines are shell commands (YAML: workflow `run:` steps; untagged: shell by convention).
SHELL_BLOCKS = frozenset({"", "sh", "bash", "shell", "console", "yaml", "yml", "dockerfile"})
# Top-level folders of the repository: a backticked path starting with one of them must exist.
# (.github is left out: the docs name a user's .github/workflows/lipsync.yml, which is not ours.)
REPO_DIRS = ("pytest_lipsync", "tests", "benchmarks", "docker", "docs", "fixtures", ".ci")
README_MAX_LINES = 250


def _id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------- reading Markdown


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string's first word and its lines (with their line numbers)."""

    lang: str
    lines: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Page:
    path: Path
    prose: tuple[tuple[int, str], ...]  # lines outside code blocks, inline code spans kept
    blocks: tuple[Block, ...]

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^`\s]*)")


@cache
def read_page(path: Path) -> Page:
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: str | None = None
    lang, body = "", list[tuple[int, str]]()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, lang, body = match.group(1), match.group(2).lower(), []
        elif fence is not None and match and match.group(1).startswith(fence) and not match.group(2):
            blocks.append(Block(lang, tuple(body)))
            fence = None
        elif fence is not None:
            body.append((number, line))
        else:
            prose.append((number, line))
    assert fence is None, f"{_id(path)}: a code block is never closed"
    return Page(path, tuple(prose), tuple(blocks))


def _without_code_spans(line: str) -> str:
    return re.sub(r"(`+)(.+?)\1", "", line)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor of a page: its headings' slugs (repeats numbered as GitHub does) and explicit ids."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in read_page(path).prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", line))
    return frozenset(found)


_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
_BARE_URL = re.compile(r"(?<![\w/])(?:https?|ftp|file)://\S+|<(?:https?|ftp|file):[^>]+>|\bwww\.\w")


def links(page: Page) -> Iterator[tuple[int, str]]:
    for number, line in page.prose:
        visible = _without_code_spans(line)
        for pattern in (_INLINE_LINK, _REFERENCE_LINK, _HTML_LINK):
            for match in pattern.finditer(visible):
                yield number, match.group(1)


# ---------------------------------------------------------------- links and anchors


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_link_and_anchor_resolves_inside_the_repository(page: Path) -> None:
    problems = []
    for number, target in links(read_page(page)):
        where = f"{_id(page)}:{number}: {target!r}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            problems.append(f"{where} points outside the repository (write about it, or link a page of ours)")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if path_part.startswith("/") or not resolved.is_relative_to(ROOT):
            problems.append(f"{where} leaves the repository")
        elif "shared" in resolved.relative_to(ROOT).parts:
            problems.append(f"{where} points into a shared/ folder, which is not part of the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not a Markdown page")
        elif anchor and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading of {_id(resolved)} has the anchor #{anchor}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_no_bare_url_or_outside_reference_in_the_prose(page: Path) -> None:
    """GitHub turns a bare URL into a link; and nothing outside the repository (../shared) is referred to."""
    problems = []
    for number, line in read_page(page).prose:
        visible = _without_code_spans(line)
        if _BARE_URL.search(visible):
            problems.append(f"{_id(page)}:{number}: a bare URL, which GitHub shows as a link: {line.strip()!r}")
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if "../shared" in line:
            problems.append(f"{_id(page)}:{number}: refers to ../shared, outside the repository")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_no_issue_numbers_in_the_docs(page: Path) -> None:
    """The docs say what is true now; history and tracker numbers belong in commits, not in pages."""
    problems = [
        f"{_id(page)}:{number}: {line.strip()!r}"
        for number, line in read_page(page).prose
        if re.search(r"\b(?:issue|pr|pull request)s?\s+#?\d+", _without_code_spans(line), re.IGNORECASE)
    ]
    assert not problems, "an issue number in the docs:\n" + "\n".join(problems)


def test_the_slug_rules_are_githubs() -> None:
    assert github_slug("Inputs that are not 25 fps") == "inputs-that-are-not-25-fps"
    assert github_slug("`lipsync score`") == "lipsync-score"
    assert github_slug("Fidelity: `reference` and `clean`") == "fidelity-reference-and-clean"
    assert github_slug("Install (not on PyPI yet)") == "install-not-on-pypi-yet"
    assert github_slug("max_pixels, timeout & co.") == "max_pixels-timeout--co"
    assert github_slug("A [linked](other.md) heading") == "a-linked-heading"


# ---------------------------------------------------------------- commands


@cache
def parser() -> argparse.ArgumentParser:
    from pytest_lipsync.cli.app import _parser

    return _parser()


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


_OPERATOR = re.compile(r"^[;&|<>()]+$")
# Words that may stand before a command: a prompt, a YAML `run:` key or list marker, a Dockerfile RUN, and
# wrappers that run the command after them. Environment assignments (NAME=value) are skipped too.
_PREFIXES = frozenset({"$", "-", "run:", "RUN", "time", "nice", "exec", "command", "env", "sudo"})


def shell_lines(page: Page) -> Iterator[tuple[int, str]]:
    """The lines of the page's shell-like code blocks, continuation lines (``\\``) joined."""
    for block in page.blocks:
        if block.lang not in SHELL_BLOCKS:
            continue
        pending, start = "", 0
        for number, line in block.lines:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line
            pending = ""
        if pending:
            yield start, pending


def simple_commands(line: str) -> list[list[str]]:
    """The words of each simple command of a shell line (split at ``&&``, ``|``, ``;`` ...), comments dropped.

    Raises ``ValueError`` when the line cannot be split (an unclosed quote)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for word in lexer:
        if _OPERATOR.match(word):
            commands.append([])
        else:
            commands[-1].append(word)
    return [words for words in commands if words]


def lipsync_commands(page: Page) -> Iterator[tuple[int, list[str] | None]]:
    """Each ``lipsync`` command of the page's shell blocks, as its words after ``lipsync``: a command is one
    whose first word, after prompts, ``run:`` and ``NAME=value`` assignments, is ``lipsync``. ``None`` for a
    line that names ``lipsync`` as a command but cannot be split."""
    for number, line in shell_lines(page):
        body = line.strip()
        if body.startswith("#"):
            continue  # a comment (YAML or shell) that may name a command in passing
        try:
            commands = simple_commands(body)
        except ValueError:
            if re.search(r"(?:^|[;&|]\s*|run:\s*|RUN\s+)lipsync\s", body):
                yield number, None
            continue
        for words in commands:
            while words and (words[0] in _PREFIXES or re.match(r"^[A-Za-z_]\w*=", words[0])):
                words = words[1:]
            if words and words[0] == "lipsync":
                yield number, words[1:]


def parse_error(words: list[str]) -> str | None:
    """argparse's complaint about ``lipsync WORDS``, or ``None`` when it parses (``--help`` included)."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser().parse_args(words)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                return errors.getvalue().strip().splitlines()[-1]
    return None


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_lipsync_command_in_the_docs_parses(page: Path) -> None:
    known = subparsers()
    problems = []
    for number, words in lipsync_commands(read_page(page)):
        if words is None:
            problems.append(f"{_id(page)}:{number}: a lipsync command that cannot be split into words (a quote?)")
            continue
        if words and words[0] in PENDING_SUBCOMMANDS and words[0] not in known:
            continue  # being written on another branch: checked once the parser has it
        error = parse_error(words)
        if error is not None:
            problems.append(f"{_id(page)}:{number}: lipsync {shlex.join(words)}\n    {error}")
    assert not problems, "\n".join(problems)


def test_the_command_check_catches_a_wrong_command() -> None:
    page = read_page(ROOT / "docs" / "cli.md")
    assert sum(1 for _ in lipsync_commands(page)) > 10, "the CLI page shows commands, in fenced shell blocks"
    assert parse_error(["score", "out/", "--json", "scores.json"]) is None
    assert parse_error(["gate", "all.json", "--help"]) is None
    assert "unrecognized arguments" in (parse_error(["score", "out/", "--no-such-option"]) or "")
    assert "invalid choice" in (parse_error(["scroe", "out/"]) or "")


def test_commands_are_found_where_a_shell_runs_them() -> None:
    lines = [
        "pytest -m lipsync -k lipsync",  # an argument, not a command
        "LIPSYNC_OFFLINE=1 lipsync score out/ --json s.json  # a comment: lipsync doctor",
        "$ lipsync doctor && lipsync fetch-models | tee log",
        "run: lipsync gate all.json || [ $? -eq 1 ]",
        "lipsync bench --resolutions 720p \\",
        "    --seconds 10",
        "# lipsync init in a comment",
    ]
    yaml = ["- name: The summary's link", "  run: lipsync merge shards/*.json -o all.json"]
    blocks = (
        Block("sh", tuple(enumerate(lines, 1))),
        Block("yaml", tuple(enumerate(yaml, 1))),
        Block("python", ((1, "lipsync x"),)),
    )
    found = [words for _, words in lipsync_commands(Page(ROOT / "example.md", (), blocks))]
    assert found == [
        ["score", "out/", "--json", "s.json"],
        ["doctor"],
        ["fetch-models"],
        ["gate", "all.json"],
        ["bench", "--resolutions", "720p", "--seconds", "10"],
        ["merge", "shards/*.json", "-o", "all.json"],
    ]


def test_pending_subcommands_are_shown_until_they_exist() -> None:
    missing = sorted(PENDING_SUBCOMMANDS - subparsers().keys())
    if missing:
        pytest.skip(f"not in the parser yet, their commands are not checked: {', '.join(missing)}")


@cache
def pytest_flags() -> frozenset[str]:
    from pytest_lipsync.config.keys import flat_keys

    return frozenset(f"--lipsync-{key.replace('_', '-')}" for key in flat_keys())


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_lipsync_pytest_flag_exists(page: Path) -> None:
    problems = [
        f"{_id(page)}:{number}: {flag} is not a pytest-lipsync flag"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        for flag in re.findall(r"--lipsync-[a-z][a-z-]*[a-z]", line)
        if flag not in pytest_flags()
    ]
    assert not problems, "\n".join(problems)


def _exists(path: str) -> bool:
    """A file or folder of the repository; ``pytest_lipsync/gate`` names a module or a package alike."""
    target = ROOT / path.rstrip("/")
    return target.exists() or target.with_name(target.name + ".py").exists()


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_repository_path_in_backticks_exists(page: Path) -> None:
    pattern = re.compile(r"`((?:{})/[\w./-]*)`".format("|".join(re.escape(d) for d in REPO_DIRS)))
    problems = [
        f"{_id(page)}:{number}: {path} does not exist"
        for number, line in read_page(page).prose
        for path in pattern.findall(line)
        if not _exists(path)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_test_a_page_cites_exists(page: Path) -> None:
    """A page that says which test proves a promise must name a test that exists: a renamed test would
    otherwise leave the promise unproved without a word."""
    problems = [
        f"{_id(page)}: {module}::{name} does not exist"
        for module, name in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page.read_text(encoding="utf-8"))
        if not (ROOT / module).is_file()
        or not re.search(rf"^def {name}\(", (ROOT / module).read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- reference pages against the code


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section (up to the next heading of level 2 or higher)."""
    parts = re.split(rf"^## {re.escape(heading)}\s*$", text, maxsplit=1, flags=re.MULTILINE)
    assert len(parts) == 2, f"no '## {heading}' section"
    return re.split(r"^#{1,2} ", parts[1], maxsplit=1, flags=re.MULTILINE)[0]


def _rows(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _toml(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[]`" if not value else "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    return f"`{value}`"


def test_the_configuration_page_has_one_row_per_setting() -> None:
    from pytest_lipsync.config.keys import RunOptions
    from pytest_lipsync.gate.rules import Thresholds
    from pytest_lipsync.settings import Settings

    defaults = {f.name: f.default for owner in (Settings, RunOptions, Thresholds) for f in fields(owner)}
    defaults["allow"] = ()
    assert all(value is not MISSING for value in defaults.values())
    rows = _rows(_section((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"), "Every setting"))
    keys = [row[0].strip("`") for row in rows]
    assert sorted(keys) == sorted(defaults), "rows: one per key of Settings, RunOptions and Thresholds, and allow"
    assert len(keys) == len(set(keys)), "one row per setting"
    header = ["key", "type", "default", "flag", "environment variable", "meaning"]
    for row in rows:
        assert len(row) == len(header), row
        key, _, default, flag, variable, _ = row
        key = key.strip("`")
        assert default.startswith(_toml(defaults[key])), (
            f"{key}: default {default!r}, the code says {_toml(defaults[key])}"
        )
        assert flag == f"`--lipsync-{key.replace('_', '-')}`", key
        assert variable == f"`LIPSYNC_{key.upper()}`", key


def test_the_configuration_pages_table_is_generated_from_the_declarations() -> None:
    from pytest_lipsync.config import reference

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == reference.render(page), (
        f"docs/configuration.md's table is stale: run `{reference.COMMAND}` and commit the page"
    )


def test_the_errors_page_lists_every_error_kind_with_an_example_message() -> None:
    from pytest_lipsync import errors
    from pytest_lipsync.config.resolution import video_error_kinds

    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    per_video = {row[0].strip("`"): row[1].strip("`") for row in _rows(_section(text, "Per video"))}
    whole_run = {row[0].strip("`"): row[1].strip("`") for row in _rows(_section(text, "For the whole run"))}
    assert sorted(per_video) == sorted(video_error_kinds() - {errors.VideoError.kind})
    assert sorted(whole_run) == sorted({errors.ConfigError.kind, errors.WeightsError.kind})
    for kind, example in per_video.items():  # "file: what is wrong. What to do"
        assert example.startswith("out/a.") and ". " in example, kind


def test_the_cli_page_has_every_subcommand_and_option() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## `lipsync ([a-z-]+)`", text, re.MULTILINE))
    known = subparsers()
    assert documented - known.keys() <= PENDING_SUBCOMMANDS, f"sections for no subcommand: {documented - known.keys()}"
    assert not known.keys() - documented, f"subcommands without a section: {known.keys() - documented}"
    problems = []
    for name, sub in known.items():
        section = _section(text, f"`lipsync {name}`")
        for action in sub._actions:
            for option in action.option_strings:
                if (
                    option.startswith("--")
                    and option != "--help"
                    and not re.search(rf"{re.escape(option)}(?![\w-])", section)
                ):
                    problems.append(f"lipsync {name} {option}")
    assert not problems, "options missing from their section of docs/cli.md: " + ", ".join(problems)


def test_the_ci_page_shows_the_workflow_lipsync_init_writes() -> None:
    from pytest_lipsync.cli.init import template

    assert template("lipsync.yml") in (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")


def test_the_readme_stays_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move details into docs/ and link them"
    readme = read_page(ROOT / "README.md")
    targets = {target.partition("#")[0] for _, target in links(readme)}
    assert "CONTRIBUTING.md" in targets, "the README points contributors at CONTRIBUTING.md"
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in targets, f"the README links docs/{page.name}"
