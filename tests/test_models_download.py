"""Downloading weights from a loopback HTTP server that misbehaves on request.

The server runs in a thread on 127.0.0.1, serves stand-in files registered with their own ``WeightsSpec``,
logs every request (path and ``Range`` header) and stops by itself: stalls wait on an event that teardown
sets, and a watchdog shuts the server down if a test forgets to.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_lipsync.cli.models import add_fetch_models_arguments, run_fetch_models
from pytest_lipsync.errors import WeightsError
from pytest_lipsync.models import registry
from pytest_lipsync.models.download import Transfer, download
from pytest_lipsync.models.registry import WeightsSpec
from pytest_lipsync.models.resolve import cache_dir, resolve_weights
from pytest_lipsync.models.verify import sidecar_path

STALL_LIMIT_S = 10.0
SERVER_LIFETIME_S = 120.0
QUICK = Transfer(timeout=2.0, retries=2, backoff=0.0)


@dataclass(frozen=True)
class Route:
    """What the server does for one path."""

    body: bytes = b""
    status: int = 200
    honour_range: bool = True
    cut_first: int = 0  # the first this-many requests send half the body, then close the connection
    stall: bool = False  # send the headers, then nothing
    chunk_delay: float = 0.0


class Loopback(ThreadingHTTPServer):
    """Serves ``routes`` and records every request as (path, ``Range`` header)."""

    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.stopping = threading.Event()
        self.log: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"  # type: ignore[str-bytes-safe]  # bound to a str host

    def requests(self, path: str) -> list[str | None]:
        """The ``Range`` header of each request for ``path``, in order."""
        return [range_ for logged, range_ in self.log if logged == path]


class Handler(BaseHTTPRequestHandler):
    server: Loopback

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path, Route(status=404))
        earlier = len(self.server.requests(self.path))
        self.server.log.append((self.path, self.headers.get("Range")))
        if route.status != 200:
            self.send_error(route.status)
            return
        start = self._start(route)
        body = route.body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if route.stall:
            self.server.stopping.wait(STALL_LIMIT_S)
            return
        if earlier < route.cut_first:
            body = body[: len(body) // 2]
            self.close_connection = True
        self._send(body, route.chunk_delay)

    def _start(self, route: Route) -> int:
        header = self.headers.get("Range")
        if not route.honour_range or not header:
            return 0
        return int(header.removeprefix("bytes=").split("-")[0])

    def _send(self, body: bytes, delay: float) -> None:
        step = 8192 if delay else len(body) or 1
        for offset in range(0, len(body), step):
            self.wfile.write(body[offset : offset + step])
            self.wfile.flush()
            if delay:
                time.sleep(delay)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean; ``Loopback.log`` records what matters."""


Serve = Callable[[dict[str, Route]], Loopback]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start loopback servers on demand; all stop at teardown, or by their watchdog if teardown never comes."""
    started: list[tuple[Loopback, threading.Timer]] = []

    def start(routes: dict[str, Route]) -> Loopback:
        server = Loopback(routes)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        watchdog = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
        watchdog.daemon = True
        watchdog.start()
        started.append((server, watchdog))
        return server

    yield start
    for server, watchdog in started:
        watchdog.cancel()
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loopback traffic must not go through a proxy, and no test may touch the real cache."""
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for variable in ("LIPSYNC_HOME", "LIPSYNC_OFFLINE", "LIPSYNC_MIRRORS", "LIPSYNC_STANDIN_WEIGHTS"):
        monkeypatch.delenv(variable, raising=False)


def stand_in(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def spec_for(body: bytes, *urls: str, name: str = "standin") -> WeightsSpec:
    return WeightsSpec(name, f"{name}.pt", len(body), hashlib.sha256(body).hexdigest(), urls)


def test_clean_download_is_verified_atomic_and_not_repeated(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(300_000)
    server = serve({"/w/standin.pt": Route(body)})
    spec = spec_for(body, server.url("/w/standin.pt"))

    path = download(spec, tmp_path / "models", progress=False, transfer=QUICK)
    again = download(spec, tmp_path / "models", progress=False, transfer=QUICK)

    assert path == again == tmp_path / "models" / "standin.pt"
    assert path.read_bytes() == body
    assert server.requests("/w/standin.pt") == [None]
    assert not path.with_name("standin.pt.part").exists()
    assert sidecar_path(path).is_file()


def test_interrupted_transfer_resumes_with_a_range_request(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = stand_in(200_000, seed=1)
    server = serve({"/standin.pt": Route(body, cut_first=1)})
    spec = spec_for(body, server.url("/standin.pt"))

    path = download(spec, tmp_path, progress=True, transfer=QUICK)

    assert path.read_bytes() == body
    assert server.requests("/standin.pt") == [None, f"bytes={len(body) // 2}-"]
    assert f"resuming at byte {len(body) // 2:,}" in capsys.readouterr().err


def test_server_ignoring_range_restarts_the_file(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(200_000, seed=2)
    server = serve({"/standin.pt": Route(body, cut_first=1, honour_range=False)})
    spec = spec_for(body, server.url("/standin.pt"))

    path = download(spec, tmp_path, progress=False, transfer=QUICK)

    assert path.read_bytes() == body
    assert server.requests("/standin.pt")[1] == f"bytes={len(body) // 2}-"


@pytest.mark.parametrize("served", ["same size, other bytes", "too long"])
def test_wrong_body_is_deleted_and_reported(serve: Serve, tmp_path: Path, served: str) -> None:
    body = stand_in(50_000, seed=3)
    wrong = stand_in(50_000, seed=4) if served == "same size, other bytes" else body + b"x" * 10
    server = serve({"/standin.pt": Route(wrong)})
    spec = spec_for(body, server.url("/standin.pt"))

    with pytest.raises(WeightsError) as caught:
        download(spec, tmp_path, progress=False, transfer=QUICK)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["standin.pt.lock"]
    message = str(caught.value)
    assert server.url("/standin.pt") in message
    if served == "too long":
        assert f"more than the expected {len(body):,} bytes" in message
    else:
        assert f"received SHA-256 {hashlib.sha256(wrong).hexdigest()}, expected {spec.sha256}" in message
        assert "deleted, not used" in message


def test_not_found_fails_at_once_with_instructions(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(1000)
    server = serve({})
    spec = spec_for(body, server.url("/gone/standin.pt"))

    with pytest.raises(WeightsError) as caught:
        download(spec, tmp_path / "cache", progress=False, transfer=QUICK)

    assert server.requests("/gone/standin.pt") == [None]  # a 404 is not retried
    error = caught.value
    assert error.path == str(tmp_path / "cache" / "standin.pt")
    assert f"{server.url('/gone/standin.pt')}: HTTP 404" in error.message
    assert f"standin.pt (1,000 bytes, SHA-256 {spec.sha256})" in error.message
    assert f"put it in {tmp_path / 'cache'}" in error.message
    assert error.facts["sha256"] == spec.sha256


def test_stalled_server_times_out_after_bounded_retries(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(1000)
    server = serve({"/standin.pt": Route(body, stall=True)})
    spec = spec_for(body, server.url("/standin.pt"))

    began = time.monotonic()
    with pytest.raises(WeightsError) as caught:
        download(spec, tmp_path, progress=False, transfer=Transfer(timeout=0.5, retries=1, backoff=0.0))

    assert time.monotonic() - began < 5.0
    assert "timed out waiting for data (gave up after 2 attempts)" in str(caught.value)
    assert len(server.requests("/standin.pt")) == 2
    assert not (tmp_path / "standin.pt").exists()


def test_mirrors_are_tried_in_order_before_the_official_url(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(20_000, seed=5)
    server = serve({"/mirror-b/standin.pt": Route(body), "/official/standin.pt": Route(body)})
    spec = spec_for(body, server.url("/official/standin.pt"))

    path = download(
        spec, tmp_path, mirrors=[server.url("/mirror-a/"), server.url("/mirror-b")], progress=False, transfer=QUICK
    )

    assert path.read_bytes() == body
    assert [logged for logged, _ in server.log] == ["/mirror-a/standin.pt", "/mirror-b/standin.pt"]


def test_a_file_mirror_that_is_a_fifo_fails_at_once_saying_so(make_fifo: Callable[[str], Path], tmp_path: Path) -> None:
    """``urllib`` would open the FIFO and wait for a writer: the mirror is refused unread, the next URL tried."""
    fifo = make_fifo("standin.pt")
    spec = spec_for(stand_in(3000, seed=6))

    with pytest.raises(WeightsError) as caught:
        download(spec, tmp_path / "to", mirrors=[tmp_path.as_uri()], progress=False, transfer=QUICK)

    assert f"{fifo.as_uri()}: {fifo} is a FIFO, not a regular file" in str(caught.value)
    assert not (tmp_path / "to" / "standin.pt").exists()


def fetch_after_barrier(barrier: threading.Barrier, spec: WeightsSpec, directory: Path) -> None:
    """Child process body: start downloading at the same moment as the sibling."""
    barrier.wait(timeout=60)
    download(spec, directory, progress=False, transfer=QUICK)


def test_two_processes_download_once_and_both_succeed(serve: Serve, tmp_path: Path) -> None:
    body = stand_in(256 * 1024, seed=6)
    server = serve({"/standin.pt": Route(body, chunk_delay=0.02)})  # about 0.6 s of transfer
    spec = spec_for(body, server.url("/standin.pt"))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    children = [context.Process(target=fetch_after_barrier, args=(barrier, spec, tmp_path)) for _ in range(2)]

    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)

    assert [child.exitcode for child in children] == [0, 0]
    assert server.requests("/standin.pt") == [None]
    assert (tmp_path / "standin.pt").read_bytes() == body


@pytest.mark.parametrize("how", ["argument", "LIPSYNC_OFFLINE=1"])
def test_offline_never_touches_the_network(serve: Serve, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    body = stand_in(1000)
    server = serve({"/standin.pt": Route(body)})
    spec = spec_for(body, server.url("/standin.pt"))
    if how != "argument":
        monkeypatch.setenv("LIPSYNC_OFFLINE", "1")

    with pytest.raises(WeightsError) as caught:
        resolve_weights(spec, offline=how == "argument", progress=False)

    assert server.log == []
    message = str(caught.value)
    assert "offline mode" in message
    assert f"standin.pt (1,000 bytes, SHA-256 {spec.sha256}) from {server.url('/standin.pt')}" in message
    assert f"put it in {cache_dir()}" in message
    assert "LIPSYNC_STANDIN_WEIGHTS" in message


def test_first_use_fetches_into_the_cache_then_finds_it(serve: Serve) -> None:
    body = stand_in(5000, seed=7)
    server = serve({"/standin.pt": Route(body)})
    spec = spec_for(body, server.url("/standin.pt"))

    first = resolve_weights(spec, progress=False)
    second = resolve_weights(spec, progress=False)

    assert (first.source, second.source) == ("download", "cache")
    assert first.path == second.path == cache_dir() / "standin.pt"
    assert not first.custom and first.sha256 == second.sha256 == spec.sha256
    assert len(server.log) == 1


def fetch_models(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lipsync fetch-models")
    add_fetch_models_arguments(parser)
    return run_fetch_models(parser.parse_args(argv))


def test_fetch_models_fetches_every_file_and_reports_failures(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = stand_in(3000, seed=8), stand_in(3000, seed=9)
    server = serve({"/m/good.pt": Route(good)})
    specs = (spec_for(bad, server.url("/official/bad.pt"), name="bad"), spec_for(good, name="good"))
    monkeypatch.setattr(registry, "RELEASED", specs)

    status = fetch_models("--to", str(tmp_path / "dir"), "--mirror", server.url("/m"))

    out, err = capsys.readouterr()
    assert status == 1
    assert (tmp_path / "dir" / "good.pt").read_bytes() == good
    assert not (tmp_path / "dir" / "bad.pt").exists()
    assert f"good.pt: {tmp_path / 'dir' / 'good.pt'} (SHA-256 verified)" in out
    assert f"{server.url('/official/bad.pt')}: HTTP 404" in err


def test_fetch_models_into_another_directory_says_how_to_use_it(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = stand_in(3000, seed=10)
    server = serve({"/good.pt": Route(body)})
    monkeypatch.setattr(registry, "RELEASED", (spec_for(body, server.url("/good.pt"), name="good"),))

    assert fetch_models("--to", str(tmp_path / "elsewhere")) == 0
    assert f"set LIPSYNC_HOME={tmp_path / 'elsewhere'}" in capsys.readouterr().out
    assert fetch_models() == 0
    assert "LIPSYNC_HOME" not in capsys.readouterr().out
    assert (cache_dir() / "good.pt").read_bytes() == body


def test_fetch_models_fetches_the_networks_of_the_metrics_asked_for_and_no_others(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An offline runner pre-fetches LPIPS's and FID's files with the LSE ones; without --metrics none of them."""
    bodies = {name: stand_in(2000, seed=seed) for seed, name in enumerate(("lse", "trunk", "heads", "inception"), 20)}
    server = serve({f"/{name}.pt": Route(body) for name, body in bodies.items()})
    specs = {name: spec_for(body, server.url(f"/{name}.pt"), name=name) for name, body in bodies.items()}
    monkeypatch.setattr(registry, "RELEASED", (specs["lse"],))
    # the same trunk in two metrics' lists: fetched once
    files = {"lpips": (specs["trunk"], specs["heads"]), "lpips-vgg": (specs["trunk"],), "fid": (specs["inception"],)}
    monkeypatch.setattr(registry, "METRIC_FILES", files)

    assert fetch_models("--to", str(tmp_path / "plain")) == 0
    assert sorted(path.name for path in (tmp_path / "plain").glob("*.pt")) == ["lse.pt"]
    capsys.readouterr()

    assert fetch_models("--to", str(tmp_path / "all"), "--metrics", "lpips", "lpips-vgg", "--metrics", "fid") == 0
    fetched = sorted(path.name for path in (tmp_path / "all").glob("*.pt"))
    assert fetched == ["heads.pt", "inception.pt", "lse.pt", "trunk.pt"]
    assert all((tmp_path / "all" / name).read_bytes() == bodies[name[:-3]] for name in fetched)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines if "SHA-256 verified" in line] == [
        "lse.pt",
        "trunk.pt",
        "heads.pt",
        "inception.pt",
    ]
    assert [logged for logged, _ in server.log].count("/trunk.pt") == 1


def test_fetch_models_refuses_a_metric_without_files(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        fetch_models("--metrics", "cpbd")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--metrics: invalid choice: 'cpbd'" in err and "lpips-vgg" in err


def test_fetch_models_usage_errors(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve({})
    monkeypatch.setattr(registry, "RELEASED", (spec_for(b"x", server.url("/x.pt")),))
    with pytest.raises(SystemExit) as caught:
        fetch_models("--mirror", "ftp://example.invalid/")
    assert caught.value.code == 2

    monkeypatch.setenv("LIPSYNC_OFFLINE", "1")
    assert fetch_models() == 2
    assert "LIPSYNC_OFFLINE is set" in capsys.readouterr().err
    assert server.log == []


def test_mirrors_from_the_environment_serve_first_use(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    body = stand_in(4000, seed=12)
    server = serve({"/lab/standin.pt": Route(body)})
    spec = spec_for(body, server.url("/official/standin.pt"))
    monkeypatch.setenv("LIPSYNC_MIRRORS", f"{server.url('/empty')}, {server.url('/lab/')}")

    resolved = resolve_weights(spec, progress=False)

    assert resolved.path.read_bytes() == body and resolved.source == "download"
    assert [logged for logged, _ in server.log] == ["/empty/standin.pt", "/lab/standin.pt"]


def test_malformed_mirror_variable_names_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIPSYNC_MIRRORS", "ftp://example.invalid/models")

    assert fetch_models() == 2
    assert "LIPSYNC_MIRRORS holds 'ftp://example.invalid/models'" in capsys.readouterr().err
