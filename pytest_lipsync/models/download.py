"""Fetching a released weights file: resumable, verified, atomic and done once across processes.

Only the standard library talks to the network (``urllib.request``'s default opener honours
``http_proxy`` / ``https_proxy`` / ``no_proxy``). Bytes go to ``<file>.part``; an interrupted transfer is
resumed with an HTTP ``Range`` request, and the file only appears under its real name, by ``os.replace``,
after its size and SHA-256 match the registry. A ``FileLock`` on ``<file>.lock`` makes concurrent processes
(xdist workers, CI jobs on one runner) download once: the others wait, then find the verified file.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

from pytest_lipsync.errors import WeightsError, not_a_regular_file
from pytest_lipsync.models.registry import WeightsSpec
from pytest_lipsync.models.verify import file_sha256

_CHUNK = 1 << 16
_USER_AGENT = "pytest-lipsync (python urllib)"
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Transfer:
    """How patient a download is: per-read timeout (seconds) and retries with exponential backoff."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0


class _Retryable(Exception):
    """A transient failure: the next attempt resumes from what ``.part`` already holds."""


class _Failed(Exception):
    """This URL cannot deliver the file; the next URL may."""


def candidate_urls(spec: WeightsSpec, mirrors: Sequence[str] = ()) -> tuple[str, ...]:
    """Mirrors first (a user configures one because it is nearer or reachable), then the official URLs.

    A mirror is a base URL that holds the files under their released names.
    """
    urls = [f"{mirror.rstrip('/')}/{spec.filename}" for mirror in mirrors] + list(spec.urls)
    return tuple(dict.fromkeys(urls))


def is_mirror_url(url: str) -> bool:
    """Mirrors are fetched like the official URLs, so only schemes ``urllib`` can fetch are accepted."""
    return urllib.parse.urlsplit(url).scheme in ("http", "https", "file")


def download(
    spec: WeightsSpec,
    directory: Path,
    *,
    mirrors: Sequence[str] = (),
    progress: bool = True,
    transfer: Transfer = Transfer(),
) -> Path:
    """Make ``directory/spec.filename`` the verified released file and return its path.

    A verified file already there is returned without touching the network.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unavailable(spec, directory, f"cannot be saved: cannot create {directory} ({exc})") from exc
    target = directory / spec.filename
    with _exclusive(target, progress):
        if _is_released(target, spec):
            return target
        failures: list[str] = []
        for url in candidate_urls(spec, mirrors):
            try:
                _fetch(url, spec, target, transfer, progress)
            except _Failed as exc:
                failures.append(f"{url}: {exc}")
                continue
            return target
    raise unavailable(
        spec,
        directory,
        "could not be downloaded: " + ("; ".join(failures) or "no download URL is configured"),
        failures=failures,
    )


def manual_instructions(spec: WeightsSpec, directory: Path) -> str:
    """How to install the file by hand, for machines that cannot download it."""
    return (
        f"Get {spec.describe()} from {' or '.join(spec.urls)} and put it in {directory}, "
        f"or point {spec.env_var} at a copy"
    )


def unavailable(spec: WeightsSpec, directory: Path, what: str, **facts: object) -> WeightsError:
    """The error for a file that is not here and cannot be fetched: all a user needs to get it by hand."""
    return WeightsError(
        what,
        path=directory / spec.filename,
        hint=manual_instructions(spec, directory),
        facts={
            "file": spec.filename,
            "size": spec.size,
            "sha256": spec.sha256,
            "urls": list(spec.urls),
            "directory": str(directory),
            **facts,
        },
    )


@contextmanager
def _exclusive(target: Path, progress: bool) -> Iterator[None]:
    """Hold ``<target>.lock``, saying so when another process has it (the wait can be long)."""
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if progress:
            print(f"waiting for another process to download {target}", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _is_released(path: Path, spec: WeightsSpec) -> bool:
    return path.is_file() and path.stat().st_size == spec.size and file_sha256(path, sidecar=True) == spec.sha256


def _fetch(url: str, spec: WeightsSpec, target: Path, transfer: Transfer, progress: bool) -> None:
    """Complete ``.part`` from ``url`` within the retry budget, verify it, then move it into place."""
    part = target.with_name(target.name + ".part")
    local = _local_path(url)
    problem = None if local is None else not_a_regular_file(local)
    if problem is not None:  # urllib would open it, and wait forever on a FIFO with no writer
        raise _Failed(f"{local} {problem}")
    report = _Progress(spec, progress)
    for attempt in range(transfer.retries + 1):
        try:
            _transfer(url, spec, part, transfer.timeout, report)
            break
        except _Retryable as exc:
            if attempt == transfer.retries:
                raise _Failed(f"{exc} (gave up after {attempt + 1} attempts)") from exc
            delay = transfer.backoff * 2**attempt
            report.say(f"{url}: {exc}; retrying in {delay:g} s")
            time.sleep(delay)
    actual = file_sha256(part)
    if actual != spec.sha256:
        part.unlink()
        raise _Failed(f"received SHA-256 {actual}, expected {spec.sha256}; the download was deleted, not used")
    os.replace(part, target)
    file_sha256(target, sidecar=True)  # the sidecar spares the next process a hash of the whole file


def _local_path(url: str) -> Path | None:
    """The file a ``file:`` URL names; ``None`` for other schemes."""
    parts = urllib.parse.urlsplit(url)
    return Path(urllib.request.url2pathname(parts.path)) if parts.scheme == "file" else None


def _transfer(url: str, spec: WeightsSpec, part: Path, timeout: float, progress: _Progress) -> None:
    """One request: append to ``.part`` (or restart it) until the server stops sending."""
    have = part.stat().st_size if part.is_file() else 0
    if have >= spec.size:
        part.unlink()
        have = 0
    headers = {"User-Agent": _USER_AGENT} | ({"Range": f"bytes={have}-"} if have else {})
    progress.say(f"downloading {spec.describe()} from {url}")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            have = _resume_point(response, have)
            if have:
                progress.say(f"resuming at byte {have:,}")
            with part.open("ab" if have else "wb") as sink:
                have = _copy(response, sink, spec.size - have + 1, have, progress)
                sink.flush()
                os.fsync(sink.fileno())
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # the range starts beyond the server's file: the part is not a prefix of it
            part.unlink(missing_ok=True)
            raise _Retryable("HTTP 416: the partial file does not fit, starting again") from exc
        if exc.code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from exc
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _Retryable(_reason(exc)) from exc
    finally:
        progress.finish()
    _check_length(part, spec, have)


def _resume_point(response: http.client.HTTPResponse, have: int) -> int:
    """Where the body starts: ``have`` if the server honoured the range, else 0 (restart)."""
    status = getattr(response, "status", None) or 200  # file: URLs have no status
    if status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    match = re.match(r"bytes (\d+)-", content_range)
    if match is None or int(match.group(1)) != have:
        raise _Retryable(f"asked for the bytes from {have:,}, the server sent {content_range!r}")
    return have


def _copy(response: http.client.HTTPResponse, sink: BinaryIO, limit: int, have: int, progress: _Progress) -> int:
    """Stream at most ``limit`` bytes (one more than the file needs, to notice an oversized body)."""
    while limit > 0 and (chunk := response.read(min(_CHUNK, limit))):
        sink.write(chunk)
        limit -= len(chunk)
        have += len(chunk)
        progress.update(have)
    return have


def _check_length(part: Path, spec: WeightsSpec, have: int) -> None:
    if have > spec.size:
        part.unlink()
        raise _Failed(f"the server sent more than the expected {spec.size:,} bytes; the download was deleted")
    if have < spec.size:
        raise _Retryable(f"the connection closed after {have:,} of {spec.size:,} bytes")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out waiting for data"
    return f"{type(exc).__name__}: {exc}"


class _Progress:
    """Messages on stderr, and on a terminal one updating progress line (logs get no carriage returns)."""

    def __init__(self, spec: WeightsSpec, enabled: bool) -> None:
        self._spec = spec
        self._enabled = enabled
        self._live = enabled and sys.stderr.isatty()
        self._shown = 0.0

    def say(self, message: str) -> None:
        if self._enabled:
            print(message, file=sys.stderr)

    def update(self, have: int) -> None:
        now = time.monotonic()
        if self._live and now - self._shown >= 0.1:
            self._shown = now
            done, total = have / 1e6, self._spec.size / 1e6
            line = f"\r{self._spec.filename}: {done:.1f} of {total:.1f} MB ({100 * have / self._spec.size:.0f}%)"
            print(line, end="", file=sys.stderr)
            sys.stderr.flush()

    def finish(self) -> None:
        if self._shown:
            print(file=sys.stderr)
            self._shown = 0.0
