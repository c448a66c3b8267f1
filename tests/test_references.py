"""What the code and docs cite lives in the repo: no file points to a references file or a shared
folder outside it, and every section of docs/references.md that a file cites exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "docs", "bench", "tests")
OUTSIDE = ("REFERENCES" + ".md", "../" + "shared")  # spelled in two parts so that this file passes
BINARY = {".png", ".db", ".pt", ".safetensors", ".parquet", ".pyc", ".arrow"}
CITATION = re.compile(r"references\.md(?:, \"([^\"]+)\"|#([\w-]+))")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if (path.is_file() and path.suffix not in BINARY
                    and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts)):
                files.append(path)
    return files


def _anchor(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_nothing_cites_files_outside_the_repo():
    problems = []
    for path in _text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            problems += [f"{path.relative_to(ROOT)} line {n}: {word}" for word in OUTSIDE if word in line]
    assert not problems, "citations of files outside the repo (move the fact into docs/):\n" + "\n".join(problems)


def test_cited_sections_of_docs_references_exist():
    headings = [ln[3:] for ln in (ROOT / "docs" / "references.md").read_text().splitlines() if ln.startswith("## ")]
    names, anchors = set(headings), {_anchor(h) for h in headings}
    cited, missing = 0, []
    for path in _text_files():
        for name, anchor in CITATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            cited += 1
            if (name and name not in names) or (anchor and anchor not in anchors):
                missing.append(f"{path.relative_to(ROOT)}: {name or '#' + anchor}")
    assert cited >= 6  # rules.py (3), losses.py, mixing.md, objectives.md
    assert not missing, f"cited sections missing from docs/references.md ({sorted(names)}):\n" + "\n".join(missing)
