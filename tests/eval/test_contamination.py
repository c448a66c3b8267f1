"""Contamination: exact and n-gram overlap on hand-made sets, and the built-in task's disjoint split."""

import pytest

from graft.eval.contamination import Item, ngrams, overlap, read_items


def test_ngrams_by_hand():
    assert ngrams("47+85=", 8) == {("47", "+", "85", "=")}  # shorter than n: one gram of all of it
    assert ngrams("a b c d", 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams("   ", 3) == set()


def test_overlap_by_hand():
    train = [Item("What is 2 plus 2?", "4"), Item("Name the capital of France, please", "Paris")]
    test = [
        Item("what is  2 plus 2?", "4"),  # exact after normalisation, same answer
        Item("Name the capital of France, quickly", "Paris"),  # shares 3-grams, answer seen
        Item("Something new entirely here", "42"),  # clean
        Item("What is 2 plus 2?", "5"),  # prompt seen, different answer
    ]
    r = overlap(train, test, n=3)
    assert r["exact_prompt"] == 2 / 4
    assert r["exact_pair"] == 1 / 4
    assert r["answer"] == 2 / 4
    assert r["ngram_any"] == 3 / 4
    # texts are "prompt answer". Item 1: what is 2 plus 2 ? 4 -> 5 trigrams, all in training: 1.
    # Item 2: name the capital of france , quickly paris -> 6 trigrams, the first 4 shared: 4/6.
    # Item 3: 0. Item 4: what is 2 plus 2 ? 5 -> 5 trigrams, all but (2, ?, 5) shared: 4/5.
    assert r["ngram_mean_share"] == pytest.approx((1 + 4 / 6 + 0 + 4 / 5) / 4, abs=1e-12)
    assert r["examples"] == ["what is  2 plus 2?", "What is 2 plus 2?"]


def test_builtin_task_split_is_clean_and_self_overlap_is_total(tmp_path):
    train = read_items("arithmetic", "train", ["task.num_train=200", "task.num_test=50"])
    test = read_items("arithmetic", "test", ["task.num_train=200", "task.num_test=50"])
    assert overlap(train, test)["exact_prompt"] == 0.0
    assert overlap(test, test)["exact_pair"] == 1.0
    f = tmp_path / "leak.jsonl"
    f.write_text("".join(f'{{"prompt": "{it.prompt}", "answer": "{it.answer}"}}\n' for it in test[:10]))
    assert overlap(read_items(str(f), "train", []), test)["exact_prompt"] == 10 / 50
