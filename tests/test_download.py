"""`modelarb data pull` against a real HTTP server on 127.0.0.1 serving files the test writes."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import pytest

from conftest import CliResult
from modelarb.data import download
from modelarb.data.download import FileProgress
from modelarb.data.registry import DATASETS, Dataset
from modelarb.errors import DatasetError
from test_cli_arbitrage import flat

BIG = "market/alpha.jsonl"


class FileServer(ThreadingHTTPServer):
    """Serves files under `root`; can drop a transfer mid-file once, fail, corrupt, or ignore Range."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_once: set[str] = set()
        self.fail: dict[str, int] = {}  # path -> how many 503 answers before serving it
        self.corrupt: set[str] = set()
        self.ignore_range = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"

    def requests_for(self, relpath: str) -> list[str | None]:
        return [r for p, r in self.requests if p == relpath]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = cast(FileServer, self.server)
        relpath, wanted = self.path.lstrip("/"), self.headers.get("Range")
        server.requests.append((relpath, wanted))
        if server.fail.get(relpath, 0) > 0:
            server.fail[relpath] -= 1
            self.send_error(503)
            return
        path = server.root / relpath
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if relpath in server.corrupt:
            body = bytes(b ^ 0xFF for b in body)
        start = 0
        if wanted and not server.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", wanted)
            assert match, wanted
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if relpath in server.drop_once:
            server.drop_once.discard(relpath)
            self.wfile.write(chunk[: len(chunk) // 2])
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    srv = FileServer(tmp_path / "upstream")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def tiny(tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> Dataset:
    """A synthetic three-file dataset, written upstream and registered as `tiny`; the cache is in tmp_path."""
    rng = random.Random(7)
    contents = {BIG: rng.randbytes(300_000), "market/beta.jsonl": rng.randbytes(5_000), "notes.txt": b"tiny\n"}
    for relpath, data in contents.items():
        (server.root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (server.root / relpath).write_bytes(data)
    spec = Dataset(
        name="tiny",
        description="synthetic test data",
        url_template="http://upstream.invalid/{commit}/{path}",
        commit="0" * 40,
        files={relpath: hashlib.sha256(data).hexdigest() for relpath, data in contents.items()},
        units={},
    )
    monkeypatch.setitem(DATASETS, "tiny", spec)
    monkeypatch.setenv("MODELARB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELARB_DATASET_URL", raising=False)
    return spec


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_pulled(folder: Path, server: FileServer, spec: Dataset) -> None:
    for relpath, expected in spec.files.items():
        data = (folder / relpath).read_bytes()
        assert data == (server.root / relpath).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected
    assert not list(folder.rglob("*.part"))


def test_pull_downloads_every_file_and_checks_it(tiny: Dataset, server: FileServer, tmp_path: Path) -> None:
    events: list[FileProgress] = []
    folder = download.pull("tiny", base_url=server.url, progress=events.append)
    assert folder == tmp_path / "cache" / "tiny"
    assert_pulled(folder, server, tiny)
    done = [e for e in events if e.done]
    assert [e.relpath for e in done] == sorted(tiny.files)
    assert all(e.count == 3 and e.received == e.size for e in done)
    assert download.verify("tiny", folder) == []


def test_base_url_from_environment(tiny: Dataset, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELARB_DATASET_URL", server.url)
    assert_pulled(download.pull("tiny"), server, tiny)


def test_dropped_transfer_resumes_with_a_range_request(tiny: Dataset, server: FileServer) -> None:
    server.drop_once = {BIG}
    folder = download.pull("tiny", base_url=server.url, backoff=0)
    assert_pulled(folder, server, tiny)
    half = len((server.root / BIG).read_bytes()) // 2
    assert server.requests_for(BIG) == [None, f"bytes={half}-"]


def test_server_ignoring_range_restarts_the_file(tiny: Dataset, server: FileServer) -> None:
    server.drop_once, server.ignore_range = {BIG}, True
    assert_pulled(download.pull("tiny", base_url=server.url, backoff=0), server, tiny)
    assert len(server.requests_for(BIG)) == 2


def test_partial_file_from_an_earlier_run_is_resumed(tiny: Dataset, server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "cache" / "tiny" / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((server.root / BIG).read_bytes()[:1000])
    assert_pulled(download.pull("tiny", base_url=server.url), server, tiny)
    assert server.requests_for(BIG) == ["bytes=1000-"]


def test_server_errors_are_retried(tiny: Dataset, server: FileServer) -> None:
    server.fail = {BIG: 2}
    assert_pulled(download.pull("tiny", base_url=server.url, backoff=0), server, tiny)
    assert len(server.requests_for(BIG)) == 3


def test_retries_are_bounded(tiny: Dataset, server: FileServer, tmp_path: Path) -> None:
    server.fail = {BIG: 100}
    with pytest.raises(DatasetError, match=r"503.*3 attempts") as error:
        download.pull("tiny", base_url=server.url, retries=2, backoff=0)
    assert BIG in str(error.value)
    assert len(server.requests_for(BIG)) == 3
    assert not (tmp_path / "cache" / "tiny" / BIG).exists()


def test_missing_upstream_file_is_not_retried(tiny: Dataset, server: FileServer) -> None:
    (server.root / BIG).unlink()
    with pytest.raises(DatasetError, match="HTTP 404"):
        download.pull("tiny", base_url=server.url, backoff=0)
    assert len(server.requests_for(BIG)) == 1


def test_wrong_checksum_is_refused(tiny: Dataset, server: FileServer, tmp_path: Path) -> None:
    server.corrupt = {BIG}
    got = hashlib.sha256(bytes(b ^ 0xFF for b in (server.root / BIG).read_bytes())).hexdigest()
    with pytest.raises(DatasetError) as error:
        download.pull("tiny", base_url=server.url)
    message = str(error.value)
    assert BIG in message and tiny.files[BIG] in message and got in message
    final = tmp_path / "cache" / "tiny" / BIG
    assert not final.exists()
    assert not final.with_name(final.name + ".part").exists()


def test_no_connection_is_one_clear_error(tiny: Dataset, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        download.pull("tiny", base_url=closed_port_url(), retries=1, backoff=0)
    message = str(error.value)
    assert "cannot connect" in message and "--data DIR" in message and "MODELARB_DATA" in message
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_files_already_present_are_skipped(tiny: Dataset, server: FileServer) -> None:
    folder = download.pull("tiny", base_url=server.url)
    server.requests.clear()
    assert download.pull("tiny", base_url=server.url) == folder
    assert server.requests == []


def test_altered_local_file_is_downloaded_again(tiny: Dataset, server: FileServer) -> None:
    folder = download.pull("tiny", base_url=server.url)
    (folder / "notes.txt").write_bytes(b"edited\n")
    got = hashlib.sha256(b"edited\n").hexdigest()
    assert download.verify("tiny", folder) == [f"notes.txt: sha256 {got}, expected {tiny.files['notes.txt']}"]
    server.requests.clear()
    assert_pulled(download.pull("tiny", base_url=server.url), server, tiny)
    assert [p for p, _ in server.requests] == ["notes.txt"]


def test_verify_reports_missing_files(tiny: Dataset, tmp_path: Path) -> None:
    assert download.verify("tiny", tmp_path) == [f"{relpath}: missing" for relpath in sorted(tiny.files)]
    with pytest.raises(DatasetError, match="no such folder"):
        download.verify("tiny", tmp_path / "absent")


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; known datasets: computational-arbitrage"):
        download.pull("nope")


def test_cli_pull_list_path_verify(
    tiny: Dataset, server: FileServer, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    not_pulled = run_cli("data", "path", "tiny")
    assert not_pulled.code != 0 and "not pulled" in not_pulled.err and "modelarb data pull tiny" in not_pulled.err

    pulled = run_cli("data", "pull", "tiny", "--url", server.url)
    assert pulled.code == 0, pulled.err
    folder = tmp_path / "cache" / "tiny"
    assert_pulled(folder, server, tiny)
    assert "3 files verified" in pulled.out

    path = run_cli("data", "path", "tiny")
    assert (path.code, path.out) == (0, f"{folder}\n")
    listing = run_cli("data", "list")
    assert listing.code == 0 and re.search(rf"tiny: .*; 3 files pulled: {re.escape(str(folder))}", flat(listing.out))
    assert run_cli("data", "verify", "tiny", "--data", str(folder)).code == 0

    (folder / "notes.txt").write_bytes(b"edited\n")
    altered = run_cli("data", "verify", "tiny", "--data", str(folder))
    assert altered.code != 0 and "notes.txt: sha256" in altered.err and "Traceback" not in altered.err


def test_cli_pull_without_network(tiny: Dataset, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("data", "pull", "tiny", "--url", closed_port_url())
    assert result.code != 0
    assert result.err.count("error:") == 1 and "MODELARB_DATA" in result.err and "Traceback" not in result.err


def test_commands_find_data_in_the_environment_then_a_complete_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliResult]
) -> None:
    from modelarb.data.locate import DEFAULT_DATASET, dataset_dir, local_domain
    from modelarb.data.registry import dataset

    monkeypatch.delenv("MODELARB_DATA", raising=False)
    monkeypatch.setenv("MODELARB_CACHE", str(tmp_path / "cache"))
    folder = dataset_dir(DEFAULT_DATASET)
    (folder / "swebench").mkdir(parents=True)  # a partial pull is not a local copy
    with pytest.raises(DatasetError, match="no local data: pass --data DIR"):
        local_domain("swebench")
    no_data = run_cli("describe")
    assert no_data.code != 0 and "modelarb data pull" in no_data.err and "Traceback" not in no_data.err
    for relpath in dataset(DEFAULT_DATASET).files:
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_text("")
    assert local_domain("swebench") == folder / "swebench"
    monkeypatch.setenv("MODELARB_DATA", str(tmp_path / "mine"))
    (tmp_path / "mine" / "lean").mkdir(parents=True)
    assert local_domain("lean") == tmp_path / "mine" / "lean"
    assert local_domain("swebench") == tmp_path / "mine"  # no such subfolder: the folder itself
