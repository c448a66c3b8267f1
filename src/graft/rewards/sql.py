"""Generated SQL run on a read-only SQLite database; its rows compared with the reference query's.

The task follows Think2SQL-style execution accuracy: a completion is right when
its query returns the same result as the reference query on the same database.

Safety (the query runs in the trainer's process, so SQLite itself is the guard):
    - the database is opened ``file:...?mode=ro`` (URI) and ``PRAGMA query_only=ON``;
    - an authorizer allows only reading: SELECT, READ, FUNCTION, RECURSIVE
      (no ATTACH, PRAGMA, writes, temp tables, ``load_extension``);
    - exactly one statement, starting with SELECT or WITH (``sqlite3`` refuses a
      second statement in ``execute``);
    - a progress handler aborts the query past ``timeout`` seconds (it runs every
      1,000 virtual-machine steps, so it also stops ``WITH RECURSIVE`` loops);
    - strings and blobs are capped at 1 MB (``SQLITE_LIMIT_LENGTH``), at most
      ``max_rows`` rows and ``max_bytes`` bytes of values are fetched (more is
      ``output_limit``): 10,000 rows of 1 MB blobs would otherwise be 10 GB in the
      trainer's memory;
    - ``fts3_tokenizer`` (it returns a native pointer) is denied with the writes.

Comparison: rows as tuples, values normalised (an integral float equals the
integer; floats rounded to ``float_digits``); column names are ignored, column
order matters. Order-insensitive (multiset) unless the reference query has an
ORDER BY at its top level, then the order must match too.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from graft.rewards.base import Verdict
from graft.tasks.base import Example

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_DENIED_FUNCTIONS = {"fts3_tokenizer", "load_extension"}
MAX_BYTES = 32 << 20  # values fetched from one query, at most
_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_COMMENT_OR_STRING = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", re.DOTALL)
MAX_QUERY_CHARS = 20_000


class QueryError(Exception):
    """A query failed: ``reason`` is one of the verdict reasons."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def extract_sql(completion: str) -> str:
    """The last ```sql fenced block, else the text after the last 'SQL:' marker, else everything."""
    blocks = _FENCE.findall(completion[-4 * MAX_QUERY_CHARS:])
    if blocks:
        return blocks[-1].strip()
    marker = completion.rfind("SQL:")
    return (completion[marker + 4:] if marker >= 0 else completion).strip()


def _strip_literals(sql: str) -> str:
    return _COMMENT_OR_STRING.sub(lambda m: "''" if m.group(0)[0] in "'\"" else " ", sql)


def is_ordered(sql: str) -> bool:
    """Whether ORDER BY appears at the top level (not inside parentheses) of the query."""
    text, depth = _strip_literals(sql), 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif (depth == 0 and re.match(r"order\s+by\b", text[i:i + 20], re.IGNORECASE)
              and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            return True
    return False


def _normal(value):
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return round(value, 6)
    return value


def _authorize(action, arg1, arg2, *_):
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def _size(row: tuple) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


def run_query(db: str | Path, sql: str, timeout: float = 2.0, max_rows: int = 10_000,
              max_bytes: int = MAX_BYTES) -> list[tuple]:
    """Rows of one read-only SELECT, or QueryError(reason). ``db`` must exist (FileNotFoundError)."""
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"database not found: {db}")
    sql = sql.strip().rstrip(";").strip()
    head = _strip_literals(sql).lstrip().split(None, 1)
    if len(sql) > MAX_QUERY_CHARS or not head or head[0].lower() not in ("select", "with"):
        raise QueryError("rejected", "not a single SELECT / WITH query")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
        conn.set_authorizer(_authorize)
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        try:
            cursor = conn.execute(sql)
            rows, fetched = [], 0
            for row in cursor:  # one row at a time: the byte budget is checked before the next one
                fetched += _size(row)
                if fetched > max_bytes:
                    raise QueryError("output_limit", f"more than {max_bytes} bytes of values")
                rows.append(row)
                if len(rows) > max_rows:
                    break
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if msg == "interrupted":
                raise QueryError("timeout", f"over {timeout} s") from None
            if "syntax error" in msg or "incomplete input" in msg or "unrecognized token" in msg:
                raise QueryError("syntax", msg) from None
            raise QueryError("rejected" if "not authorized" in msg else "runtime", msg) from None
        except (sqlite3.Warning, sqlite3.ProgrammingError) as exc:  # e.g. more than one statement
            raise QueryError("rejected", str(exc)) from None
        except sqlite3.DatabaseError as exc:  # includes DataError (too big), IntegrityError, ...
            msg = str(exc)
            reason = "output_limit" if "too big" in msg else "rejected" if "not authorized" in msg else "runtime"
            raise QueryError(reason, msg) from None
        except MemoryError:
            raise QueryError("memory", "out of memory") from None
        if len(rows) > max_rows:
            raise QueryError("output_limit", f"more than {max_rows} rows")
        return [tuple(_normal(v) for v in row) for row in rows]
    finally:
        conn.close()


def same_result(got: list[tuple], expected: list[tuple], ordered: bool) -> bool:
    return got == expected if ordered else Counter(got) == Counter(expected)


class SqlGrader:
    """Execution match on SQLite. The example's ``answer`` is the reference query, ``meta["db"]`` the file.

    timeout:  seconds per query (reference and completion each).
    max_rows: rows fetched at most from the completion's query.
    max_bytes: bytes of values fetched at most from it (strings and blobs by length, others 8).
    workers:  completions graded in parallel threads by ``grade_many``.
    """

    name = "sql"

    def __init__(self, timeout: float = 2.0, max_rows: int = 10_000, workers: int = 1, max_bytes: int = MAX_BYTES):
        self.timeout, self.max_rows, self.workers = float(timeout), int(max_rows), int(workers)
        self.max_bytes = int(max_bytes)
        self._reference: dict[tuple[str, str], list[tuple]] = {}

    def reference_rows(self, db: str, query: str) -> list[tuple]:
        """The reference query's rows (cached). ValueError if the reference itself fails."""
        key = (str(db), query)
        if key not in self._reference:
            try:
                self._reference[key] = run_query(db, query, timeout=max(self.timeout, 10.0),
                                                 max_rows=10 * self.max_rows)
            except QueryError as exc:
                raise ValueError(f"reference query failed ({exc.reason}: {exc})") from None
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from None
        return self._reference[key]

    def grade(self, completion: str, example: Example) -> Verdict:
        db = example.meta.get("db")
        if not db:
            raise ValueError("sql grader: the example has no meta['db'] (database file)")
        expected = self.reference_rows(db, example.answer)
        try:
            got = run_query(db, extract_sql(completion), self.timeout, self.max_rows, self.max_bytes)
        except QueryError as exc:
            return Verdict(0.0, exc.reason, {"detail": str(exc)[:200]})
        ok = same_result(got, expected, is_ordered(example.answer))
        return Verdict(float(ok), None if ok else "wrong_answer", {"rows": len(got)})

    def grade_many(self, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
        if self.workers == 1 or len(items) < 2:
            return [self.grade(c, e) for c, e in items]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda item: self.grade(*item), items))
