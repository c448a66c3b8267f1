"""Partial rollouts (APRIL): the sampler's stop condition and budgets, the buffer, stale tokens."""

import math
import shutil

import pytest
import torch

from graft.config import ConfigError, build_config
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.rollout.partial import (
    PartialRollouts,
    decoupled_truncated_is,
    expired,
    mask_stale,
    stale_tokens,
)
from graft.rollout.sampler import GroupStop, Rollout, sample
from graft.tasks.base import Example
from graft.train.batch import completion_logprobs, make_batch
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train
from graft.train.rl import Learner
from graft.train.targets import build_batch

# ---------------------------------------------------------------- a long-tail toy policy


class _Tok:
    vocab_size, pad_id, eos_id, bos_id = 8, 0, 1, None

    def encode(self, text: str) -> list[int]:
        return [int(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(str(i) for i in ids if i > 1)


class LongTailPolicy:
    """A row's EOS probability per token is fixed by its first prompt token k (2..7):
    P(EOS) = P_EOS[k], so completion lengths are geometric with means from 2 to 25 tokens."""

    def __init__(self):
        self.P_EOS = {2: 0.5, 3: 0.3, 4: 0.2, 5: 0.1, 6: 0.06, 7: 0.04}
        self.tokenizer, self.module, self.forwards = _Tok(), torch.nn.Module(), 0

    def forward(self, ids, attention_mask, position_ids, cache=None, use_cache=True):
        self.forwards += 1
        if cache is None:  # the cache is each row's EOS logit, read off its first real token
            first = ids.gather(1, attention_mask[:, : ids.shape[1]].argmax(-1, keepdim=True))[:, 0]  # (B,)
            p = torch.tensor([self.P_EOS[int(k)] for k in first])
            cache = torch.log(p * 6 / (1 - p))  # (B,) against six other tokens of logit 0
        logits = torch.zeros(ids.shape[0], ids.shape[1], 8)
        logits[..., 0] = -1e9  # never pad
        logits[..., 1] = cache[:, None]
        return logits, cache

    def select_cache_rows(self, cache, index):
        return cache.index_select(0, index)


def _cfg(**rl):
    sets = [f"rl.{k}={v}" for k, v in rl.items()]
    return build_config({}, ["rollout.strategy=partial", "rollout.over_provision=2", *sets])


def _examples(n: int, start: int = 0) -> list[Example]:
    return [Example(prompt=str(2 + (start + i) % 6), answer="") for i in range(n)]


def test_stop_condition_keeps_each_rows_samples_and_aborts_the_rest():
    pol = LongTailPolicy()
    prompts, G, K = [[k] for k in range(2, 8)], 4, 2
    groups = [g for g in range(6) for _ in range(G)]
    full = sample(pol, prompts, max_new_tokens=40, temperature=1.0, repeats=G,
                  keys=0)
    cut = sample(pol, prompts, max_new_tokens=40, temperature=1.0, repeats=[G] * 6,
                 stop=GroupStop(budgets=[40] * 24, groups=groups, complete_groups=K),
                 keys=0)
    complete = [g for g in range(6) if all(cut[i].finish_reason != "aborted" for i in range(g * G, g * G + G))]
    assert len(complete) >= K and len(complete) < 6
    steps = max(len(ro.completion_ids) for ro in cut)
    assert steps < max(len(ro.completion_ids) for ro in full)  # the long tail was not waited for
    for a, b in zip(full, cut):  # each row's draws are its own: a cut row is a prefix of its full row
        assert b.completion_ids == a.completion_ids[: len(b.completion_ids)]
        assert b.logprobs == a.logprobs[: len(b.logprobs)]
        if b.finish_reason == "aborted":
            assert len(b.completion_ids) == steps < len(a.completion_ids)
        else:
            assert b.finish_reason == a.finish_reason and b.completion_ids == a.completion_ids


def test_neutral_new_arguments_change_nothing():
    pol = TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)
    prompts = [pol.tokenizer.encode(p) for p in ["12+3=", "7-5=", "99+99="]]
    a = sample(pol, prompts, max_new_tokens=10, temperature=1.0, repeats=3,
               keys=2)
    b = sample(pol, prompts, max_new_tokens=10, temperature=1.0, repeats=[3, 3, 3],
               stop=GroupStop(budgets=[10] * 9), keys=2)
    assert [(r.completion_ids, r.logprobs, r.finish_reason) for r in a] == \
        [(r.completion_ids, r.logprobs, r.finish_reason) for r in b]
    c = sample(pol, prompts, max_new_tokens=10, temperature=1.0, repeats=3,
               stop=GroupStop(budgets=[4] * 9), keys=2)
    for x, y in zip(a, c):
        assert y.completion_ids == x.completion_ids[:4]
        assert y.finish_reason == ("stop" if x.finish_reason == "stop" and len(x.completion_ids) <= 4 else "length")


def test_partial_steps_decode_fewer_steps_and_train_only_complete_groups():
    pol, cfg = LongTailPolicy(), _cfg(num_prompts=3, num_generations=4, max_new_tokens=60)
    state = PartialRollouts()
    steps_p = steps_f = trained = 0
    for step in range(8):
        new = _examples(state.new_prompts(cfg), start=step * 7)
        assert len(new) >= 3 and len(new) + len(state.pending) == math.ceil(2 * 3)
        examples, groups, info = state.step(pol, new, cfg, 0, seeds=[step * 7 + i for i in range(len(new))])
        assert len(groups) >= 3 and len(examples) == len(groups)
        assert all(ro.finish_reason in ("stop", "length") for g in groups for ro in g)
        assert all(len(g) == 4 and len({ro.prompt_ids[0] for ro in g}) == 1 for g in groups)
        assert all(ro.prompt_ids == pol.tokenizer.encode(ex.prompt) for ex, g in zip(examples, groups) for ro in g)
        assert all(len(ro.token_versions) == len(ro.completion_ids) == len(ro.logprobs) for g in groups for ro in g)
        assert info["rollout/buffered_groups"] == len(state.pending)
        steps_p, trained = steps_p + info["rollout/decode_steps"], trained + len(groups)
        full = sample(pol, [[int(ex.prompt)] for ex in _examples(3, start=step * 7)], max_new_tokens=60,
                      temperature=1.0, repeats=4, keys=step)
        steps_f += max(len(ro.completion_ids) for ro in full)
    assert trained >= 8 * 3
    assert steps_p < 0.8 * steps_f  # fewer sequential decode steps per trained group set


def test_resumed_rows_continue_from_their_prefix_with_correct_logprobs():
    pol = TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)
    cfg = build_config({}, ["rollout.strategy=partial", "rl.num_prompts=1", "rl.num_generations=3",
                            "rl.max_new_tokens=12", "rollout.over_provision=3"])
    ex = Example(prompt="12+3=", answer="15")
    prompt = pol.tokenizer.encode(ex.prompt)
    head = sample(pol, [prompt], max_new_tokens=5, temperature=1.0, repeats=3,
                  keys=4)
    rows = [Rollout(prompt_ids=prompt, completion_ids=ro.completion_ids, logprobs=ro.logprobs, policy_version=0,
                    finish_reason="aborted" if ro.finish_reason == "length" else ro.finish_reason,
                    token_versions=[0] * len(ro.completion_ids)) for ro in head]
    state = PartialRollouts(pending=[(ex, rows)])
    _, groups, _ = state.step(pol, _examples_for(pol, 2), cfg, 1, seeds=[5, 6])
    mine = [g for g in groups if g[0].prompt_ids == prompt]
    assert mine, "the buffered group completes first: it has a head start"
    for old, ro in zip(rows, mine[0]):
        assert ro.completion_ids[: len(old.completion_ids)] == old.completion_ids
        assert ro.token_versions == [0] * len(old.completion_ids) + [1] * (len(ro.completion_ids) - len(old.completion_ids))
    flat = [ro for g in groups for ro in g]
    batch = make_batch([r.prompt_ids for r in flat], [r.completion_ids for r in flat], pol.tokenizer.pad_id,
                       [r.logprobs for r in flat])
    with torch.no_grad():
        logp, _ = completion_logprobs(pol, batch)
    assert float(((logp - batch.old_logprobs) * batch.loss_mask).abs().max()) < 1e-4  # weights unchanged


def _examples_for(pol, n):
    return [Example(prompt=p, answer="") for p in ["7-5=", "99+9=", "4+4="][:n]]


def test_expired_rows_restart_from_the_prompt():
    pol, cfg = LongTailPolicy(), build_config({}, ["rollout.strategy=partial", "rl.num_prompts=1", "rl.num_generations=2",
                                                   "rollout.over_provision=1", "rollout.max_staleness=1",
                                                   "rl.max_new_tokens=30"])
    old = Rollout(prompt_ids=[2], completion_ids=[3, 4], logprobs=[-1.0, -1.0], policy_version=1,
                  finish_reason="aborted", token_versions=[1, 2])
    assert not expired(old, 2, 1) and expired(old, 3, 1) and not expired(Rollout([2], [], [], 0, "aborted",
                                                                                     token_versions=[]), 9, 0)
    state = PartialRollouts(pending=[(Example(prompt="2", answer=""), [old, old])])
    _, groups, info = state.step(pol, [], cfg, 3, seeds=[])
    assert info["rollout/restarted_rows"] == 2 and len(groups) == 1
    assert all(ro.token_versions == [3] * len(ro.completion_ids) for ro in groups[0])


# ---------------------------------------------------------------- stale tokens in the loss


def test_stale_tokens_and_mask_by_hand():
    stale = stale_tokens([[3, 4, 5], None, [5]], version=5, width=4)
    assert stale.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert mask_stale(mask, stale).tolist() == [[0, 0, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]
    assert mask.tolist()[0] == [1, 1, 1, 0]  # the caller's tensor is not modified


def test_decoupled_truncated_is_by_hand():
    prox = torch.log(torch.tensor([[0.5, 0.4, 0.2]]))
    behav = torch.log(torch.tensor([[0.25, 0.1, 0.4]]))
    stale = torch.tensor([[1.0, 1.0, 0.0]])
    old, w = decoupled_truncated_is(prox, behav, stale, cap=3.0)
    assert torch.allclose(old, torch.log(torch.tensor([[0.5, 0.4, 0.4]])))
    assert torch.allclose(w, torch.tensor([[2.0, 3.0, 1.0]]))  # 0.5/0.25 = 2; 0.4/0.1 = 4 -> cap 3


def _stale_groups(pol):
    prompt = pol.tokenizer.encode("1+2=")
    rows = []
    for i, versions in enumerate([[0, 0, 1, 1], [1, 1, 1], [0, 1], [1]]):
        ids = pol.tokenizer.encode("3" * (len(versions) - 1)) + [pol.tokenizer.eos_id]
        rows.append(Rollout(prompt_ids=prompt, completion_ids=ids, logprobs=[-0.5 - 0.1 * t for t in range(len(ids))],
                            policy_version=1, finish_reason="stop", shaped_reward=float(i % 2), token_versions=versions))
    return [rows]


@pytest.mark.parametrize("mode", ["correct", "mask"])
def test_build_batch_masks_or_keeps_stale_tokens(mode):
    pol = TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)
    cfg = build_config({}, ["rollout.strategy=partial", f"rollout.stale={mode}", "rl.num_prompts=1",
                            "rl.num_generations=4"])
    groups = _stale_groups(pol)
    batch, info = build_batch(Learner(pol, None), groups, cfg, version=1)
    stale = stale_tokens([ro.token_versions for ro in groups[0]], 1, batch.loss_mask.shape[1])
    assert info["rollout/off_policy_token_frac"] == pytest.approx(3 / 10)
    behaviour = make_batch([ro.prompt_ids for ro in groups[0]], [ro.completion_ids for ro in groups[0]],
                           pol.tokenizer.pad_id, [ro.logprobs for ro in groups[0]]).old_logprobs
    assert torch.equal(batch.old_logprobs, behaviour)  # the stored behaviour logprobs, untouched
    on_stale = batch.loss_weights[stale > 0]
    if mode == "mask":
        assert float(on_stale.abs().sum()) == 0.0 and float(batch.loss_mask[stale > 0].sum()) == 0.0
        assert float(batch.loss_weights.sum()) == pytest.approx(1.0)  # token mean over the 7 fresh tokens
    else:
        assert bool((on_stale > 0).all()) and float(batch.loss_mask.sum()) == 10
    plain, _ = build_batch(Learner(pol, None), groups, build_config({}, ["rl.num_prompts=1", "rl.num_generations=4"]))
    assert torch.equal(plain.advantages[stale == 0], batch.advantages[stale == 0])


def test_build_batch_decoupled_cap_uses_the_current_policy_on_stale_tokens_only():
    pol = TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)
    cfg = build_config({}, ["rollout.strategy=partial", "rollout.stale_is_cap=2", "rl.num_prompts=1",
                            "rl.num_generations=4"])
    groups = _stale_groups(pol)
    batch, _ = build_batch(Learner(pol, None), groups, cfg, version=1)
    plain, _ = build_batch(Learner(pol, None), groups, cfg.model_copy(update={"rollout": cfg.rollout.model_copy(
        update={"stale_is_cap": None})}), version=1)
    stale = stale_tokens([ro.token_versions for ro in groups[0]], 1, batch.loss_mask.shape[1]) > 0
    with torch.no_grad():
        prox, _ = completion_logprobs(pol, plain)
    assert torch.allclose(batch.old_logprobs[stale], prox[stale])
    assert torch.equal(batch.old_logprobs[~stale], plain.old_logprobs[~stale])
    w = torch.exp(prox - plain.old_logprobs).clamp(max=2.0)
    assert torch.allclose(batch.advantages[stale], (plain.advantages * w)[stale])


# ---------------------------------------------------------------- config and the whole loop


def test_bad_partial_config_names_the_field():
    for sets, field in ((["rollout.over_provision=0.9"], "rollout.over_provision"),
                        (["rollout.stale=drop"], "rollout.stale"),
                        (["rollout.max_staleness=-1"], "rollout.max_staleness"),
                        (["rollout.strategy=partial", "select.dynamic_sampling=true"], "select.dynamic_sampling"),
                        (["rollout.strategy=partial", "rollout.over_provision=3", "select.max_extra_prompts=4"],
                         "select.max_extra_prompts")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            build_config({}, sets)


def test_partial_run_resumes_exactly(tmp_path, tiny_overrides):
    # 40 SFT steps make completions end at EOS with varied lengths, so groups get carried over
    sets = tiny_overrides + ["rollout.strategy=partial", "rollout.over_provision=2", "rl.max_new_tokens=40",
                             "rl.num_generations=2", "sft.steps=40", "sft.lr=0.01", "rl.steps=4",
                             "checkpoint.every=42", "checkpoint.keep=5", "eval.num_examples=4"]
    train(prepare(build_config({}, sets)), tmp_path / "ref")
    reference = read_metrics(tmp_path / "ref" / "metrics.jsonl")
    assert reference[41]["rollout/buffered_groups"] > 0  # the checkpoint at step 42 holds a buffer
    assert any(r.get("rollout/off_policy_token_frac", 0) > 0 for r in reference[42:])
    shutil.copytree(tmp_path / "ref", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step_44")  # as if killed after step 42's checkpoint
    train(prepare(build_config({}, sets)), tmp_path / "cut", resume=True)
    resumed = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    drop = ("perf/", "wall")
    assert [{k: v for k, v in r.items() if not k.startswith(drop)} for r in resumed] == \
        [{k: v for k, v in r.items() if not k.startswith(drop)} for r in reference]
