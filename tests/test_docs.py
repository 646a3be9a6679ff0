"""The documentation holds together: links resolve, the README stays short, the module map is whole."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODULE_MAP = ROOT / "docs" / "development.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # fences open a line
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # fences open a line
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def modules() -> list[str]:
    found = []
    for package in ("engine", "acausal_tui"):
        found += [p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")]
    return sorted(found)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for target in relative_links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.is_file():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert broken == [], f"{doc.name}: {broken}"


def test_the_link_checker_catches_a_broken_anchor_and_file(tmp_path: Path):
    (tmp_path / "a.md").write_text("# A title\n\n[x](a.md#a-title) [y](b.md) [z](a.md#nope)\n")
    assert relative_links(tmp_path / "a.md") == ["a.md#a-title", "b.md", "a.md#nope"]
    assert anchors(tmp_path / "a.md") == {"a-title"}
    assert slug("Sweeps: conditions × seeds with `CI`") == "sweeps-conditions--seeds-with-ci"


def test_readme_is_at_most_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_readme_links_the_module_map():
    assert "docs/development.md" in (ROOT / "README.md").read_text()


def test_the_module_map_lists_every_module_and_no_other():
    text = MODULE_MAP.read_text()
    listed = set(re.findall(r"^\| `((?:engine|acausal_tui)/[\w/]+\.py)` \|", text, flags=re.M))
    assert set(modules()) - listed == set(), "modules missing from docs/development.md"
    assert listed - set(modules()) == set(), "docs/development.md lists modules that do not exist"


def test_every_module_over_300_lines_says_why_in_the_map():
    rows = dict(re.findall(r"^\| `([\w/]+\.py)` \| (.*)\|$", MODULE_MAP.read_text(), flags=re.M))
    long = [m for m in modules() if len((ROOT / m).read_text().splitlines()) > 300]
    assert [m for m in long if "over 300 lines:" not in rows.get(m, "")] == []


def test_every_module_starts_with_a_docstring():
    import ast

    missing = [m for m in modules() if not ast.get_docstring(ast.parse((ROOT / m).read_text()))]
    assert missing == []
