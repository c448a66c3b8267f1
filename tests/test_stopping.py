"""Stopping like the model's own generation config: every EOS id it names, chat end-of-turn
tokens, and ``rl.stop`` strings; the finish reason says which ('stop' / 'stop_string')."""

from __future__ import annotations

import json

import pytest

from graft.config import build_config
from graft.models.hf import HFPolicy, HFTokenizer
from graft.models.hf_testing import build_char_tokenizer, build_tiny_hf_model
from graft.models.tokenizer import CharTokenizer
from graft.rollout.decode import Stops
from graft.rollout.partial import PartialRollouts
from graft.rollout.sampler import sample
from graft.rollout.tree import sample_tree
from graft.tasks.base import Example

PROMPTS = ["12+34=", "7*8=", "hello", "99-1="]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_hf_model(tmp_path_factory.mktemp("stop") / "m", arch="qwen2", seed=3)


def _greedy(policy, prompts=PROMPTS, n=16, **kw):
    ids = [policy.tokenizer.encode(p) for p in prompts]
    return sample(policy, ids, max_new_tokens=n, temperature=0.0, **kw)


def _with_eos(model_dir, tmp_path, eos) -> HFPolicy:
    """The same model with generation_config.json's eos_token_id set to ``eos``."""
    import shutil

    target = tmp_path / "eos"
    shutil.copytree(model_dir, target)
    gen = json.loads((target / "generation_config.json").read_text())
    (target / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": eos}))
    return HFPolicy.load(target)


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "int"])
def test_every_eos_id_of_the_generation_config_stops(model_dir, tmp_path, as_list):
    base = HFPolicy.load(model_dir)
    assert base.tokenizer.stop_ids == (base.tokenizer.eos_id,)
    free = _greedy(base)
    assert all(ro.finish_reason == "length" for ro in free)  # a random model never says </s>
    x = free[0].completion_ids[3]  # a token greedy decoding emits: make it a second EOS
    assert x != base.tokenizer.eos_id
    policy = _with_eos(model_dir, tmp_path, [2, x] if as_list else x)
    assert policy.tokenizer.stop_ids == tuple(sorted({2, x}))
    assert policy.tokenizer.eos_id == 2  # SFT still appends the tokenizer's own EOS
    stopped = _greedy(policy)
    for a, b in zip(free, stopped):
        cut = a.completion_ids.index(x) + 1 if x in a.completion_ids else len(a.completion_ids)
        assert b.completion_ids == a.completion_ids[:cut]
        assert b.finish_reason == ("stop" if x in a.completion_ids else "length")
    assert stopped[0].finish_reason == "stop" and len(stopped[0].completion_ids) <= 4


def test_chat_end_of_turn_tokens_are_stop_ids():
    hf = build_char_tokenizer("0123456789+=")
    hf.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tok = HFTokenizer(hf)
    im_end = hf.convert_tokens_to_ids("<|im_end|>")
    assert tok.stop_ids == tuple(sorted({tok.eos_id, im_end}))
    assert HFTokenizer(build_char_tokenizer("0123")).stop_ids == (2,)  # no such token: only EOS


def _cut_at_string(tok, completion: list[int], strings: list[str]) -> tuple[list[int], bool]:
    for k in range(1, len(completion) + 1):
        if tok.decode(completion[:k]).endswith(tuple(strings)):
            return completion[:k], True
    return completion, False


@pytest.mark.parametrize("share,compact", [(True, True), (False, False)])
def test_stop_strings_cut_each_row_where_its_text_ends_with_one(model_dir, share, compact):
    """Sampled rows draw one number per original row per step, so a row with stop strings is the
    same row without them, cut at the first token whose text ends with a stop string."""
    policy = HFPolicy.load(model_dir)
    tok = policy.tokenizer
    ids = [tok.encode(p) for p in PROMPTS]

    def run(**kw):
        return sample(policy, ids, max_new_tokens=20, temperature=1.0, repeats=3, share_prefill=share,
                      compact=compact, keys=5, **kw)

    free = run()
    strings = [free[0].text[4:6], free[5].text[2:3]]  # two strings some rows contain
    cut = run(stop_strings=strings)
    hits = 0
    for a, b in zip(free, cut):
        want, hit = _cut_at_string(tok, a.completion_ids, strings)
        assert b.completion_ids == want and b.logprobs == pytest.approx(a.logprobs[: len(want)])
        assert b.finish_reason == ("stop_string" if hit else a.finish_reason)
        if hit:
            assert b.text.endswith(tuple(strings))  # the stop string stays in the completion
        hits += hit
    assert hits >= 2


def test_tree_and_partial_rows_stop_on_strings_too(model_dir):
    policy = HFPolicy.load(model_dir)
    tok = policy.tokenizer
    ids = [tok.encode(p) for p in PROMPTS[:2]]
    free = sample_tree(policy, ids, num_generations=2, max_new_tokens=12, temperature=0.0, segment_len=4,
                       branch=2, max_depth=2, keys=0)
    s = free[0].text[5:7]
    tree = sample_tree(policy, ids, num_generations=2, max_new_tokens=12, temperature=0.0, segment_len=4,
                       branch=2, max_depth=2, keys=0, stop_strings=[s])
    assert tree[0].finish_reason == "stop_string" and tree[0].text.endswith(s)
    assert tree[0].completion_ids == _cut_at_string(tok, free[0].completion_ids, [s])[0]

    # a resumed row: the stop string begins in the tokens it already had (stop_context)
    ctx = free[0].completion_ids[:5]
    nxt = sample(policy, [ids[0] + ctx], max_new_tokens=4, temperature=0.0)[0].completion_ids[0]
    s2 = tok.decode(ctx[-1:] + [nxt])
    assert len(s2) == 2
    alone = sample(policy, [ids[0] + ctx], max_new_tokens=4, temperature=0.0, stop_strings=[s2])[0]
    carried = sample(policy, [ids[0] + ctx], max_new_tokens=4, temperature=0.0, stop_strings=[s2],
                     stop_context=[ctx])[0]
    assert carried.completion_ids == [nxt] and carried.finish_reason == "stop_string"
    assert len(alone.completion_ids) > 1 or alone.finish_reason != "stop_string"


def test_partial_rollouts_carry_a_rows_tokens_into_stop_string_matching(model_dir, monkeypatch):
    from graft.rollout import partial

    many = list("abcdefghijklmnopqrstuvwxyz0123456789")  # rows end after ~10 tokens, unevenly
    cfg = build_config({}, ["rollout.strategy=partial", "rl.num_prompts=1", "rl.num_generations=2",
                            "rl.max_new_tokens=40", "rollout.over_provision=3", "select.max_extra_prompts=4",
                            f"rl.stop={many}"])
    policy = HFPolicy.load(model_dir)
    seen = []
    real = partial.sample

    def spy(policy, contexts, **kw):
        seen.append((contexts, kw["stop_strings"], kw["stop_context"]))
        return real(policy, contexts, **kw)

    monkeypatch.setattr(partial, "sample", spy)
    buffer = PartialRollouts()
    examples = [Example(prompt=p, answer="") for p in PROMPTS]
    buffer.step(policy, examples[:3], cfg, 0, seeds=[0, 1, 2])
    held = {tuple(ro.prompt_ids + ro.completion_ids): ro.completion_ids
            for _, g in buffer.pending for ro in g if ro.finish_reason == "aborted" and ro.completion_ids}
    assert held, "no row was left running: nothing would be resumed"
    buffer.step(policy, examples[3:], cfg, 1, seeds=list(range(3, len(examples))))
    contexts, strings, carried = seen[1]
    assert strings == many
    resumed = [(c, k) for c, k in zip(contexts, carried) if k]
    assert resumed and all(held[tuple(c)] == k for c, k in resumed)  # context = prompt + carried


def test_stops_decodes_the_whole_row_when_its_tail_is_too_short():
    tok = CharTokenizer()
    stops = Stops(tok, ["ab"])
    assert stops.ends_with_string(tok.encode("xxab") + [tok.bos_id] * 40)  # specials decode to ""
    assert not stops.ends_with_string(tok.encode("xxa") + [tok.bos_id] * 40)
    assert stops.reason(tok.encode("ab") + [tok.eos_id], by_string=True) == "stop"  # an id comes first
    assert stops.reason(tok.encode("ab"), by_string=True) == "stop_string"
    assert stops.reason(tok.encode("ab"), by_string=False) is None


def test_rl_stop_strings_reach_training_and_evaluation(tmp_path, tiny_overrides):
    from graft.train.logging import read_metrics
    from graft.train.loop import prepare, train

    overrides = tiny_overrides + ["rl.stop=['=', '+']", "checkpoint.every=100"]
    setup = prepare(build_config({}, overrides))
    summary = train(setup, tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    rl = [r for r in rows if "rollout/completion_len" in r]
    assert rl and all(r["rollout/completion_len"] < 24 for r in rl)
    assert summary["eval_examples"] == 16
    with pytest.raises(Exception, match="rl.stop"):
        build_config({}, ["rl.stop=['']"])
