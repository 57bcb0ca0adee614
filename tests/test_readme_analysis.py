"""The README's analysis examples (Arbitrage, Market economics and robustness) run as written, in a fresh folder."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from test_cli_arbitrage import flat

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    text = README.read_text()
    block = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return "\n".join(re.findall(r"```bash\n(.*?)```", block, flags=re.S))


def test_readme_analysis_examples_run_as_written(paper_data: Path, tmp_path: Path) -> None:
    """Every command of the README's Arbitrage and Market sections, in a fresh folder, as written."""
    script = readme_block("analysis-examples")
    assert "$DIR" in script and "DIR=" in script
    script = script.replace("--bootstraps 1000", "--bootstraps 20")  # the only change: a shorter bootstrap
    env = {**os.environ, "MODELARB_DATA": str(paper_data), "COLUMNS": "120"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "maximum margin 41.1% at u = 0.7549" in flat(done.stdout)
    assert (tmp_path / "plan.json").is_file()
