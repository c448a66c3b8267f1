"""SQL grader on the shipped example database: read-only, time-limited, result sets compared."""

import time
from pathlib import Path

import pytest

from graft.rewards.sql import QueryError, SqlGrader, extract_sql, is_ordered, run_query, same_result
from graft.tasks.base import Example

DB = Path(__file__).resolve().parents[2] / "src" / "graft" / "data" / "sql" / "shop.db"


def ex(query):
    return Example("q", query, meta={"db": str(DB)})


@pytest.fixture(scope="module")
def grader():
    return SqlGrader(timeout=1.0)


def test_equivalent_queries_match(grader):
    ref = ex("SELECT name FROM customers WHERE city = 'Oslo'")
    # same rows, another order and another spelling: the reference has no ORDER BY
    v = grader.grade("```sql\nselect c.name from customers c where c.city='Oslo' order by name desc;\n```", ref)
    assert v.reward == 1.0 and v.error is None
    assert grader.grade("SQL: SELECT name FROM customers WHERE city = 'Lyon'", ref).error == "wrong_answer"


def test_order_matters_when_the_reference_orders(grader):
    ref = ex("SELECT name FROM products WHERE price < 5 ORDER BY price")
    assert grader.grade("SELECT name FROM products WHERE price < 5 ORDER BY price", ref).reward == 1.0
    assert grader.grade("SELECT name FROM products WHERE price < 5 ORDER BY price DESC", ref).reward == 0.0


def test_multiset_comparison_counts_duplicates():
    assert same_result([(1,), (1,), (2,)], [(2,), (1,), (1,)], ordered=False)
    assert not same_result([(1,), (2,)], [(1,), (1,), (2,)], ordered=False)
    assert not same_result([(1,), (2,)], [(2,), (1,)], ordered=True)


def test_numbers_compare_by_value(grader):
    assert grader.grade("SELECT 12.0", ex("SELECT COUNT(*) FROM customers")).reward == 1.0
    assert grader.grade("SELECT 12", ex("SELECT COUNT(*) FROM customers")).reward == 1.0


def test_is_ordered():
    assert is_ordered("SELECT a FROM t ORDER BY a")
    assert is_ordered("select a from t\norder  by a desc limit 1")
    assert not is_ordered("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not is_ordered("SELECT 'order by' FROM t")
    assert not is_ordered("SELECT border_by FROM t")


@pytest.mark.parametrize("sql,reason", [
    ("DELETE FROM customers", "rejected"),
    ("UPDATE products SET price = 0", "rejected"),
    ("DROP TABLE orders", "rejected"),
    ("INSERT INTO customers VALUES (99, 'x', 'y')", "rejected"),
    ("ATTACH DATABASE '/tmp/graft_sql_x.db' AS x", "rejected"),
    ("PRAGMA table_info(customers)", "rejected"),
    ("SELECT 1; DELETE FROM customers", "rejected"),
    ("WITH x AS (SELECT 1) DELETE FROM customers", "rejected"),
    ("SELECT load_extension('/tmp/evil.so')", "rejected"),
    ("SELEC name FROM customers", "rejected"),
    ("SELECT name FROM customers WHERE", "syntax"),
    ("SELECT nope FROM customers", "runtime"),
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c", "timeout"),
    ("SELECT zeroblob(2000000000)", "output_limit"),
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000) SELECT x FROM c", "output_limit"),
    # 100 rows of 1 MB each: over the byte budget long before max_rows
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT zeroblob(999999) FROM c",
     "output_limit"),
    ("SELECT fts3_tokenizer('simple')", "rejected"),  # returns a native pointer
    ("SELECT * FROM pragma_table_info('customers')", "rejected"),
    ("", "rejected"),
])
def test_hostile_and_broken_queries(grader, sql, reason):
    before = DB.read_bytes()
    start = time.monotonic()
    v = grader.grade(sql, ex("SELECT COUNT(*) FROM customers"))
    assert time.monotonic() - start < 3.0
    assert v.reward == 0.0 and v.error == reason, v
    assert DB.read_bytes() == before
    assert not Path("/tmp/graft_sql_x.db").exists()


def test_bad_reference_is_an_error_not_a_reward(grader):
    with pytest.raises(ValueError, match="reference query failed"):
        grader.grade("SELECT 1", ex("SELECT nope FROM customers"))
    with pytest.raises(ValueError, match="database not found"):
        grader.grade("SELECT 1", Example("q", "SELECT 1", meta={"db": "/nonexistent.db"}))
    with pytest.raises(QueryError):
        run_query(DB, "DELETE FROM customers")


def test_extract_sql():
    assert extract_sql("think\n```sql\nSELECT 1\n```\nthen\n```sql\nSELECT 2;\n```") == "SELECT 2;"
    assert extract_sql("reasoning...\nSQL: SELECT 3") == "SELECT 3"


def test_every_shipped_question_grades_its_own_demonstration(grader):
    import json
    rows = [json.loads(line) for line in (DB.parent / "questions.jsonl").read_text().splitlines()]
    assert len(rows) >= 20
    for row in rows:
        assert grader.grade(row["demonstration"], ex(row["query"])).reward == 1.0, row["id"]


@pytest.mark.parametrize("sql", [
    "SELECT name FROM customers",                                     # every row
    "SELECT name, city FROM customers WHERE city = 'Oslo'",           # an extra column
    "SELECT name FROM customers WHERE city = 'Oslo' UNION ALL SELECT name FROM customers WHERE city = 'Oslo'",
    "SELECT name FROM customers WHERE city = 'Oslo' LIMIT 2",         # a subset
    "SELECT name FROM customers WHERE 0",                             # nothing
    "SELECT NULL",
])
def test_broad_or_hedging_results_are_not_paid(grader, sql):
    """A query cannot hedge: the whole result set must equal the reference's (as a multiset)."""
    assert grader.grade(sql, ex("SELECT name FROM customers WHERE city = 'Oslo'")).error == "wrong_answer"
