"""The README's front door: every command block runs as written (here, or in CI for install and the test suite),
in a fresh folder, with the paper's data where it needs it; the install line installs what the tests import."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from test_cli_arbitrage import flat
from test_download import FileServer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TESTED_HERE = ("analysis-examples", "data-examples", "library-example")
TESTED_ELSEWHERE = {  # marker or exact block -> the test or script that runs it
    "broker-quickstart": "tests/test_readme_broker.py",
    "report-example": "tests/test_report_market.py",
    "modelarb reproduce": "tests/test_reproduce.py",
}


def marked(marker: str, language: str = "bash") -> str:
    """The code of the README's blocks between `<!-- marker -->` and `<!-- /marker -->`."""
    text = README.read_text()
    block = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return "\n".join(re.findall(rf"```{language}\n(.*?)```", block, flags=re.S))


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}:{env['PATH']}"  # `modelarb` and `python` of this environment
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env={**env, "PATH": path},
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_every_readme_block_is_run_by_a_test() -> None:
    """Each bash or python block lies in a marked section this module runs, or is one CI or another test runs."""
    text = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for match in re.finditer(r"```(bash|python)\n(.*?)```", text, flags=re.S):
        before = text[: match.start()]
        markers = re.findall(r"<!-- (/?)([a-z-]+) -->", before)
        section = markers[-1][1] if markers and not markers[-1][0] else None  # inside an open marked section
        code = match.group(2).strip()
        if section in TESTED_HERE or section in TESTED_ELSEWHERE:
            continue
        if code in TESTED_ELSEWHERE:
            assert "reproduce" in (ROOT / TESTED_ELSEWHERE[code]).read_text()
            continue
        for line in code.splitlines():  # the install and test commands: .ci/run runs them in a fresh venv
            command = line.split("#")[0].strip()
            install = re.fullmatch(r'pip install -e "?\.(\[dev\])?"?', command)
            if install is not None:  # CI installs the package with the dev extra, a superset of both lines
                assert 'python -m pip install -q -e ".[dev]"' in ci, line
            else:
                assert command.split(" ", 1)[-1] == "python -m pytest -q" and "\npython -m pytest -q\n" in ci, line


def test_install_line_installs_what_the_tests_import() -> None:
    """Every third-party module a test imports comes from the project's dependencies or its test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    installed = {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-") for req in wanted}
    local = {path.stem for path in (ROOT / "tests").rglob("*.py")} | {"modelarb"}
    providers = packages_distributions()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                assert dists & installed, f"{path.name} imports {top} ({dists or 'not installed'}), not in pyproject"


def test_readme_analysis_examples_run_as_written(paper_data: Path, tmp_path: Path) -> None:
    """Every command of the README's Arbitrage and Market sections, in a fresh folder, as written."""
    script = marked("analysis-examples")
    assert "$DIR" in script and "DIR=" in script
    script = script.replace("--bootstraps 1000", "--bootstraps 20")  # the only change: a shorter bootstrap
    done = run_bash(script, tmp_path, {**os.environ, "MODELARB_DATA": str(paper_data), "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "maximum margin 41.1% at u = 0.7549" in flat(done.stdout)
    distilled = {"1.7b-84": 3.6, "1.7b-281": 5.8, "1.7b-845": 11.5, "1.7b-2816": 23.1, "1.7b-1e": 27.6}  # the paper's
    for student, margin in distilled.items():
        assert any(f" {student} " in line and f" {margin}% " in line for line in done.stdout.splitlines()), student
    assert "…" not in done.stdout
    assert (tmp_path / "plan.json").is_file()


@pytest.fixture
def upstream(paper_data: Path) -> Iterator[FileServer]:
    """The paper's data served over HTTP on loopback, standing in for the pinned upstream."""
    server = FileServer(paper_data)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_readme_data_examples_run_as_written(upstream: FileServer, tmp_path: Path) -> None:
    """list, pull (from the loopback upstream into an empty cache), path and describe, without $MODELARB_DATA."""
    env = {k: v for k, v in os.environ.items() if k != "MODELARB_DATA"}
    env |= {"MODELARB_CACHE": str(tmp_path / "cache"), "MODELARB_DATASET_URL": upstream.url, "COLUMNS": "120"}
    done = run_bash(marked("data-examples"), tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    copy = tmp_path / "cache" / "computational-arbitrage"
    assert "not pulled" in flat(done.stdout) and f"\n{copy}\n" in done.stdout
    assert "gpt5mini" in done.stdout and "deepseek" in done.stdout and "…" not in done.stdout


def test_readme_library_example_runs_from_any_folder(paper_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MODELARB_DATA": str(paper_data)}
    done = subprocess.run([sys.executable, "-c", marked("library-example", "python")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    max_margin, at = (float(v) for v in done.stdout.split()[:2])
    assert round(100 * max_margin, 1) == 41.1 and round(at, 4) == 0.7549
    assert (tmp_path / "plan.json").is_file()
