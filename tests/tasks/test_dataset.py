"""The `dataset` task: JSONL / CSV / Parquet / saved-datasets sources, column mapping, templates,
bad rows reported with file + line/row + field, shipped examples and configs that train."""

import csv
import json
import shutil

import pytest

from graft.config import load_config
from graft.errors import GraftError
from graft.models.hf import HFTokenizer
from graft.models.hf_testing import build_char_tokenizer
from graft.tasks.dataset import DatasetTask, load_examples, render_prompt, resolve_path
from graft.train.loop import prepare, train

ROWS = [
    {"question": "2+2?", "final": "4", "worked": "2+2=4. The answer is \\boxed{4}.", "id": "a"},
    {"question": "3*3?", "final": "9", "worked": "3*3=9. The answer is \\boxed{9}.", "id": "b"},
    {"question": "10-7?", "final": "3", "worked": "10-7=3. The answer is \\boxed{3}.", "id": "c"},
]
COLUMNS = {"answer": "final", "demonstration": "worked"}
TEMPLATE = "Q: {question}\nA:"


def _write_all(tmp_path):
    """The same three rows as .jsonl, .csv, .parquet and a datasets.save_to_disk directory."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"jsonl": tmp_path / "d.jsonl", "csv": tmp_path / "d.csv", "parquet": tmp_path / "d.parquet",
             "disk": tmp_path / "d_saved"}
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), paths["parquet"])
    datasets.Dataset.from_list(ROWS).save_to_disk(str(paths["disk"]))
    return paths


def test_every_source_gives_the_same_examples(tmp_path):
    paths = _write_all(tmp_path)
    loaded = {kind: load_examples(p, COLUMNS, TEMPLATE, grader="math") for kind, p in paths.items()}
    for kind, examples in loaded.items():
        assert [ex.prompt for ex in examples] == ["Q: 2+2?\nA:", "Q: 3*3?\nA:", "Q: 10-7?\nA:"], kind
        assert [ex.answer for ex in examples] == ["4", "9", "3"], kind
        assert [ex.meta["id"] for ex in examples] == ["a", "b", "c"], kind
        assert examples[0].demonstration == ROWS[0]["worked"]
    assert loaded["jsonl"][1].meta["where"].endswith("d.jsonl:2")
    assert loaded["csv"][1].meta["where"].endswith("d.csv:3")  # line 1 is the header
    assert loaded["parquet"][1].meta["where"].endswith("d.parquet: row 2")


def test_prompt_column_without_template(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hi", "answer": 42}\n')
    (ex,) = load_examples(path)
    assert (ex.prompt, ex.answer, ex.demonstration) == ("hi", "42", None)  # numbers become text


@pytest.mark.parametrize("content,expect", [
    ('{"question": "q", "final": "1"}\n{"question": "q"}\n', "bad.jsonl:2: field 'final' is missing"),
    ('{"question": "q", "final": "1"}\nnot json\n', "bad.jsonl:2: not valid JSON"),
    ('[1, 2]\n', "bad.jsonl:1: expected a JSON object"),
    ('{"final": "1"}\n', "bad.jsonl:1: field 'question' (used by task.template) is missing"),
    ('{"question": "q", "final": true}\n', "bad.jsonl:1: field 'final' must be text"),
])
def test_bad_jsonl_rows(tmp_path, content, expect):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(GraftError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        load_examples(path, COLUMNS, TEMPLATE)


def test_bad_csv_and_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bad.csv"
    path.write_text("question,final\nq1,1\nq2,\n")
    with pytest.raises(GraftError, match="bad.csv:3: field 'final' is missing or empty"):
        load_examples(path, COLUMNS, TEMPLATE)
    pq.write_table(pa.Table.from_pylist([{"question": "q", "final": "1"}, {"question": "q", "final": None}]),
                   tmp_path / "bad.parquet")
    with pytest.raises(GraftError, match="bad.parquet: row 2: field 'final' is missing"):
        load_examples(tmp_path / "bad.parquet", COLUMNS, TEMPLATE)


def test_bad_reference_data_for_its_grader(tmp_path):
    path = tmp_path / "code.jsonl"
    path.write_text('{"prompt": "p", "answer": "assert f() == 1"}\n{"prompt": "p", "answer": "assert ("}\n')
    with pytest.raises(GraftError, match="code.jsonl:2: field 'answer': tests: not valid Python"):
        load_examples(path, grader="code")
    # an assert that uses nothing of the program would pay (or fail) every completion alike
    path.write_text('{"prompt": "p", "answer": "assert f() == 1"}\n{"prompt": "p", "answer": "assert max([1, 2]) == 2"}\n')
    with pytest.raises(GraftError, match="code.jsonl:2: field 'answer': tests: line 1: this assert uses nothing the "
                                         "program defines"):
        load_examples(path, grader="code")
    path = tmp_path / "sql.jsonl"
    path.write_text('{"prompt": "p", "answer": "SELECT 1", "db": "missing.db"}\n')
    with pytest.raises(GraftError, match="sql.jsonl:1: field 'db': database not found"):
        load_examples(path, grader="sql")
    path = tmp_path / "re.jsonl"
    path.write_text('{"prompt": "p", "answer": "(a"}\n')
    with pytest.raises(GraftError, match="re.jsonl:1: field 'answer': not a valid regular expression"):
        load_examples(path, grader="regex")


def test_bad_paths_columns_and_templates(tmp_path):
    with pytest.raises(GraftError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(GraftError, match="unknown format"):
        load_examples(tmp_path / "x.txt")
    (tmp_path / "ok.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    with pytest.raises(GraftError, match="task.columns: unknown field"):
        load_examples(tmp_path / "ok.jsonl", {"question": "q"})
    with pytest.raises(GraftError, match="task.template"):
        load_examples(tmp_path / "ok.jsonl", template="{prompt")


def test_chat_template_is_applied_when_the_tokenizer_has_one():
    hf = build_char_tokenizer()
    assert render_prompt("hello", HFTokenizer(hf)) == "hello"  # no chat template: unchanged
    hf.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    assert render_prompt("hello", HFTokenizer(hf)) == "<user>hello</user><bot>"
    assert render_prompt("hello", None) == "hello"


def test_dataset_task_split_score_and_binding(tmp_path):
    paths = _write_all(tmp_path)
    task = DatasetTask(str(paths["jsonl"]), grader="exact", columns=COLUMNS, template=TEMPLATE,
                       format="boxed", format_weight=0.5, num_test=1, chat_template=True)
    with pytest.raises(GraftError, match="chat_template"):
        task.train_examples()  # prompts are not final until the tokenizer is known
    hf = build_char_tokenizer()
    hf.chat_template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    task.bind_tokenizer(HFTokenizer(hf))
    train, test = task.train_examples(), task.test_examples()
    assert len(train) == 2 and len(test) == 1
    assert {ex.prompt for ex in train + test} == {"[Q: 2+2?\nA:]", "[Q: 3*3?\nA:]", "[Q: 10-7?\nA:]"}
    ex = train[0]
    good = task.score(ex, ex.demonstration)
    assert good.correct and good.reward == 1.5 and good.parts == {"correct": 1.0, "exact": 1.0, "format": 1.0}
    bad = task.score(ex, "The answer is 1000")
    assert not bad.correct and bad.reward == 0.0
    assert task.final_answer("so \\boxed{7}") == "7"


# one grader worker: each math worker imports sympy at start-up (about 1.5 s of CPU)
ONE_WORKER = ["task.grader_options.workers=1"]


@pytest.mark.parametrize("name,grader", [("math", "math"), ("code", "code"), ("sql", "sql")])
def test_shipped_examples_demonstrations_are_correct(name, grader):
    cfg = load_config(resolve_path(f"graft:configs/{name}.yaml"), ONE_WORKER)
    task = DatasetTask.from_config(cfg.task)
    items = [(ex, ex.demonstration) for ex in task.train_examples() + task.test_examples()]
    assert len(items) >= 16 and all(demo for _, demo in items)
    for ex, _ in items:
        ex.prompt.encode("ascii")  # the built-in character tokenizer's alphabet
    scores = task.score_many(items)
    assert all(s.correct for s in scores), [ex.meta["id"] for (ex, _), s in zip(items, scores) if not s.correct]
    getattr(task.grader, "close", lambda: None)()


@pytest.mark.parametrize("name", ["math", "code", "sql"])
def test_shipped_configs_train_end_to_end(tmp_path, tiny_overrides, name):
    overrides = [o for o in tiny_overrides if not o.startswith("task.")] + [
        "threads=1", "sft.steps=1", "sft.batch_size=4", "rl.steps=1", "rl.num_prompts=2",
        "rl.num_generations=2", "eval.num_examples=1", "checkpoint.every=1", *ONE_WORKER,
    ]
    cfg = load_config(resolve_path(f"graft:configs/{name}.yaml"), overrides)
    summary = train(prepare(cfg), tmp_path / name)
    assert summary["task"] == "dataset"
    lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "rollout/reward_mean" in json.loads(lines[-1])
    shutil.rmtree(tmp_path / name)
