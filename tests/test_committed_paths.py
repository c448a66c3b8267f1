"""Committed results and docs name paths relative to the repo, never the directories of the machine
they were made on (/work/..., /tmp/..., /root/..., /home/...).

- Every JSON / JSONL file under bench/, src/, tests/ and docs/ (the results in bench/results, the
  golden metrics, the data): no string value or key holds such a path; a failure names the file
  and the key path of each one (``options.config``).
- The Markdown docs (README.md, docs/, bench/): no /work/, /root/ or /home/ path; a failure names
  the file and line. /tmp/ is allowed there: example commands write scratch output to it.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("bench", "src", "tests", "docs")
RECORD_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home)/")
DOC_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home)/")


def _files(suffixes: tuple[str, ...]) -> list[Path]:
    """Files with these suffixes under the scanned folders (hidden ones, such as caches and venvs, skipped)."""
    out = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.suffix in suffixes and path.is_file() and not any(
                    part.startswith(".") or part == "__pycache__" for part in rel.parts):
                out.append(path)
    return out


def absolute_paths(value, where: str = "") -> list[str]:
    """'key.path: value' for every string (key or value) in a JSON value that holds a machine path."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{where}.{key}" if where else str(key)
            if RECORD_PATH.search(str(key)):
                found.append(f"{here} (the key itself)")
            found += absolute_paths(child, here)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += absolute_paths(child, f"{where}[{i}]")
    elif isinstance(value, str) and RECORD_PATH.search(value):
        found.append(f"{where or '(top level)'}: {value!r}")
    return found


def test_the_scanner_finds_nested_paths():
    record = {"options": {"config": "/work/main/a.yaml", "out": "bench/results/x.json"},
              "runs": [{"dir": "runs/a"}, {"dir": "/tmp/x"}], "/home/u": 1, "note": "a/work/b"}
    assert absolute_paths(record) == ["options.config: '/work/main/a.yaml'", "runs[1].dir: '/tmp/x'",
                                      "/home/u (the key itself)"]


def test_committed_results_record_no_absolute_paths():
    files = _files((".json", ".jsonl"))
    assert any(p.parent == ROOT / "bench" / "results" for p in files)  # the scan reaches the results
    problems = []
    for path in files:
        rel = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            problems += [f"{rel}: {p}" for p in absolute_paths(json.loads(text))]
        else:
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    problems += [f"{rel} line {n}: {p}" for p in absolute_paths(json.loads(line))]
    assert not problems, ("absolute machine paths in committed files (record them relative to the repo "
                          "root):\n" + "\n".join(problems))


def test_docs_name_no_machine_directories():
    docs = [ROOT / "README.md", *(p for p in _files((".md",)) if not p.is_relative_to(ROOT / "tests"))]
    problems = [f"{path.relative_to(ROOT)} line {n}: {line.strip()}"
                for path in docs for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if DOC_PATH.search(line)]
    assert not problems, "machine paths in the docs:\n" + "\n".join(problems)
