"""report.html renders in a real browser: headless Chromium screenshots the top of the page."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from modelarb.experiments import EXPERIMENTS, Context, PaperData, Settings
from modelarb.report.build import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 900)

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of every experiment but the bootstrapped one (the slowest; it adds no new kind of content)."""
    root = os.environ.get("MODELARB_DATA")
    if not root:
        pytest.skip("MODELARB_DATA is unset: point it at the computational-arbitrage data to build the report")
    context = Context(PaperData(Path(root)), Settings())
    results = {e.name: e.run(context, lambda steps: None) for e in EXPERIMENTS if e.name != "robustness"}
    out = tmp_path_factory.mktemp("browser")
    return write_report(out, results, {"scheme": "paper"}, "browser test").html


def screenshot(page: Path, folder: Path) -> np.ndarray:
    """Chromium's screenshot of `page` as an (H, W, channels) array."""
    shot = folder / "shot.png"
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={folder / 'profile'}", f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(image.imread(shot))


def test_the_top_of_the_report_renders_with_its_summary_table(report: Path, tmp_path: Path) -> None:
    pixels = screenshot(report, tmp_path)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    rgb = np.round(pixels[..., :3] * 255).astype(np.int64)
    colours = np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))
    assert len(colours) > 50, f"only {len(colours)} distinct colours: the page looks blank"
    ink = (rgb.sum(axis=-1) < 600).mean()  # pixels clearly darker than the white page
    assert 0.01 < ink < 0.6, f"{ink:.1%} of the page is ink"
    rows = (rgb.sum(axis=-1) < 600).any(axis=1)
    assert rows[: WINDOW[1] // 4].any() and rows[WINDOW[1] // 2 :].any(), "text only in part of the window"
