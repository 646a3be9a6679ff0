import pkgutil
import subprocess
import sys
from pathlib import Path

import engine
from engine import analysis

ROOT = Path(__file__).resolve().parents[1]


def test_engine_never_imports_textual():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + (
            "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
            "print(bad)\nsys.exit(1 if bad else 0)\n"
        )
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(modules) >= 15


def test_the_protocol_doc_gives_every_indicator_formula_and_marker():
    readme = (ROOT / "docs" / "protocol.md").read_text()
    for name, formula in analysis.INDICATOR_DOCS.items():
        assert f"`{name}`" in readme and formula in readme, name
    for pattern in analysis.IDENTITY_MARKERS + analysis.SURPRISE_MARKERS:
        assert f"`{pattern}`" in readme, pattern
