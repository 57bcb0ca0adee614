"""Download a registered dataset into the cache, resuming and retrying, checked against pinned SHA-256 sums.

Each file is written to `<name>.part` (resumed with an HTTP Range request after a dropped
transfer) and moved to its final name only once its sum matches, so the cache never
holds a half-written or unverified file under a final name.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelarb.data.locate import DEFAULT_DATASET, dataset_dir
from modelarb.data.registry import dataset, sha256_of
from modelarb.errors import DatasetError

URL_ENV = "MODELARB_DATASET_URL"
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FileProgress:
    """Where a pull stands: file `index` of `count`, `received` of `size` bytes (size None if unknown)."""

    relpath: str
    index: int
    count: int
    received: int
    size: int | None
    done: bool


Progress = Callable[[FileProgress], None]


class _Restart(Exception):
    """The server answered a byte range other than the one asked for."""


def _transfer(url: str, part: Path, timeout: float, report: Callable[[int, int | None], None]) -> None:
    """Fetch `url` into `part`, resuming from its current size when the server honours Range."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink(missing_ok=True)
                raise _Restart(f"asked for bytes {offset}-, got {content_range or 'no Content-Range'}")
        else:
            offset = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        size = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if offset else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                report(received, size)
    if size is not None and received < size:
        raise http.client.IncompleteRead(b"", size - received)


def _download(
    url: str, part: Path, *, retries: int, backoff: float, timeout: float, report: Callable[[int, int | None], None]
) -> None:
    """Fetch `url` into `part`, retrying dropped transfers, timeouts and server errors with backoff."""
    failure = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _transfer(url, part, timeout, report)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # the partial file is not a prefix of this one
                part.unlink(missing_ok=True)
            elif exc.code not in RETRYABLE_HTTP:
                raise DatasetError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; check the URL") from None
            failure = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            failure = f"cannot connect: {exc.reason}"
        except (ConnectionError, TimeoutError, http.client.HTTPException, _Restart) as exc:
            failure = f"{type(exc).__name__} {exc}".strip()
        except OSError as exc:
            raise DatasetError(f"cannot download {url} into {part}: {exc}") from None
    raise DatasetError(
        f"cannot download {url} ({failure}; {retries + 1} attempts). Without network access, pass "
        "--data DIR or set MODELARB_DATA to a local copy of the data"
    )


def _install(part: Path, final: Path, expected: str) -> None:
    """Move `part` to `final` if its SHA-256 is `expected`; otherwise delete it and refuse."""
    got = sha256_of(part)
    if got != expected:
        part.unlink()
        raise DatasetError(
            f"{final}: checksum mismatch, expected sha256 {expected}, got {got}; the download was deleted. "
            "Run the pull again; if it persists, the upstream file has changed"
        )
    os.replace(part, final)


def pull(
    name: str = DEFAULT_DATASET,
    *,
    base_url: str | None = None,
    dest: Path | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Path:
    """Download every file of dataset `name` into `dest` (default: its cache folder) and return that folder.

    Files already there with the pinned sum are kept. `base_url` (else `$MODELARB_DATASET_URL`)
    replaces the upstream location: a file is fetched from `<base_url>/<relpath>`. A failed
    transfer is retried `retries` times, after `backoff` seconds, doubling each time.
    """
    spec = dataset(name)
    folder = Path(dest) if dest is not None else dataset_dir(name)
    base = base_url or os.environ.get(URL_ENV)
    files = sorted(spec.files.items())
    for index, (relpath, expected) in enumerate(files):

        def report(received: int, size: int | None, done: bool = False, relpath: str = relpath, k: int = index) -> None:
            if progress is not None:
                progress(FileProgress(relpath, k, len(files), received, size, done))

        final = folder / relpath
        if not (final.is_file() and sha256_of(final) == expected):
            final.parent.mkdir(parents=True, exist_ok=True)
            part = final.with_name(final.name + ".part")
            if not (part.is_file() and sha256_of(part) == expected):
                url = f"{base.rstrip('/')}/{relpath}" if base else spec.url(relpath)
                _download(url, part, retries=retries, backoff=backoff, timeout=timeout, report=report)
            _install(part, final, expected)
        size = final.stat().st_size
        report(size, size, True)
    return folder


def verify(name: str, folder: Path) -> list[str]:
    """Problems of a local copy of dataset `name`: one line per missing or altered file; empty if it matches."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    problems = []
    for relpath, expected in sorted(dataset(name).files.items()):
        path = folder / relpath
        if not path.is_file():
            problems.append(f"{relpath}: missing")
        elif (got := sha256_of(path)) != expected:
            problems.append(f"{relpath}: sha256 {got}, expected {expected}")
    return problems
