"""The README's broker quickstart, run as written: plan fit, replay serve, keys, serve, curl, ledger."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    block = re.search(r"<!-- broker-quickstart -->\n```bash\n(.*?)```\n<!-- /broker-quickstart -->", text, re.S)
    assert block is not None, "README.md has no broker quickstart block"
    return block.group(1)


def test_the_readme_broker_quickstart_runs(paper_data: Path, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + quickstart()
    env = {
        **os.environ,
        "MODELARB_DATA": str(paper_data),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("MODELARB_DB", None)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"price_micro"' in result.stdout and '"expected_solve_rate"' in result.stdout
    assert re.search(r'"state":"(solved|unsolved)"', result.stdout), result.stdout
    assert "ledger balances" in result.stdout
    assert (tmp_path / "broker.sqlite3").is_file()


def test_the_readme_providers_file_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelarb.service.settings import load_providers

    block = re.search(r"```toml\n(\[providers\..*?)```", README.read_text(), re.S)
    assert block is not None, "README.md has no providers.toml example"
    path = tmp_path / "providers.toml"
    path.write_text(block.group(1))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    (provider,) = load_providers(path).values()
    assert provider.max_tokens_field == "max_completion_tokens"
    assert provider.input_price is not None and provider.output_price is not None  # looked up by model name
