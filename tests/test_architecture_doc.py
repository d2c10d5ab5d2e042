"""docs/architecture.md stays true: the rule files and library modules it names exist, and every
rule file and top-level module of the library is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
LIBRARY = ROOT / "src" / "mirkd"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _named_rule_files(text: str) -> set[str]:
    return set(re.findall(r"\b([a-z_]+\.smk)\b", text))


def _library_block(text: str) -> str:
    """The lines of the rooms picture that describe src/mirkd/ (up to tests/)."""
    start = text.index("src/mirkd/ ")
    return text[start : text.index("\ntests/", start)]


def _named_modules(block: str) -> set[str]:
    """Module files (`x.py`) and subpackages (`x/`) named at the start of a line of the
    library block, including the `a.py, b.py` form."""
    named = set()
    for line in block.splitlines()[1:]:
        head = re.match(r"^  (\S.*?)(?:\s{2,}|$)", line)
        if head:
            named |= {n.strip() for n in head.group(1).split(",")}
    return named


def _dotted_modules(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w/])mirkd(?:\.[a-z_]+)+", text))


def _resolves(dotted: str) -> bool:
    """`mirkd.a.b` names a module, or a function, class or constant of the longest module
    prefix of it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        path = ROOT / "src" / Path(*parts[:cut])
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if source.is_file():
            rest = parts[cut:]
            if not rest:
                return True
            pattern = rf"^(?:def|class) {rest[0]}\b|^{rest[0]}\b.*="
            return len(rest) == 1 and bool(re.search(pattern, source.read_text(), re.M))
    return False


def test_every_rule_file_is_named_and_every_named_rule_file_exists() -> None:
    text = _text()
    existing = {p.name for p in (ROOT / "rules").glob("*.smk")}
    named = _named_rule_files(text)
    assert named - existing == set(), "docs/architecture.md names rule files that do not exist"
    assert existing - named == set(), "rule files that docs/architecture.md does not name"


def test_every_top_level_module_is_named_and_every_named_module_exists() -> None:
    named = _named_modules(_library_block(_text()))
    assert named, "no modules found under src/mirkd/ in docs/architecture.md"
    existing = {p.name for p in LIBRARY.glob("*.py") if p.name != "__init__.py"}
    existing |= {f"{p.parent.name}/" for p in LIBRARY.glob("*/__init__.py")}
    assert named - existing == set(), "docs/architecture.md names modules that do not exist"
    assert existing - named == set(), "modules of src/mirkd that docs/architecture.md omits"


def test_every_module_named_in_a_sentence_or_a_subpackage_exists() -> None:
    text = _text()
    for dotted in _dotted_modules(text):
        assert _resolves(dotted), f"docs/architecture.md names {dotted}, which does not exist"
    block = _library_block(text)
    mentioned = set(re.findall(r"(?<![\w/.])([a-z_]+\.py)\b", block))
    files = {p.name for p in LIBRARY.rglob("*.py")}
    assert mentioned - files == set(), "docs/architecture.md names files not in src/mirkd"
    for path in re.findall(r"`((?:benchmarks|envs|profiles|report|configs)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path
