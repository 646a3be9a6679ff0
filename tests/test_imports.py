"""Import hygiene: the engine loads without the UI, the import contracts hold, CI runs them."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_runner_loads_no_ui():
    code = (
        "import sys, engine.runner\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'acausal_tui'))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_cli_package_imports_without_the_app():
    code = "import sys, acausal_tui.cli\nprint('acausal_tui.app' in sys.modules, 'textual' in sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None,
    reason="import-linter is in the dev extra; .ci/run installs it and runs lint-imports",
)
def test_the_import_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_ci_runs_the_readmes_test_command_verbatim_then_lint():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"Install and run the whole test suite:\s*```sh\n(.+?)\n```", readme)
    assert match, "the README's test command"
    lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert lines[0] == match.group(1)
    assert ".venv/bin/ruff check ." in lines[1:] and ".venv/bin/lint-imports" in lines[1:]
