"""Lp-Reg (graft.algos.lp_reg): the min-p proxy, the token selection and the penalty against hand-computed
values; in a run, the term is logged, acts on few tokens, and does not depend on micro-batching."""

from __future__ import annotations

import math

import pytest
import torch

from graft.algos.lp_reg import lp_reg_penalty, lp_reg_selection, minp_proxy_logprobs
from graft.config import build_config
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

NEG = float("-inf")


def test_the_proxy_drops_tokens_below_min_p_of_the_top_one_and_renormalises():
    probs = torch.tensor([[[0.6, 0.3, 0.05, 0.05]]])  # (1, 1, 4)
    logits = probs.log() + 1.7  # a shift changes nothing
    got = lambda t, m: minp_proxy_logprobs(logits, torch.tensor([[t]]), m).item()
    # min_p 0.1: the threshold is 0.06, tokens 0 and 1 stay, Z = 0.9
    assert got(0, 0.1) == pytest.approx(math.log(0.6 / 0.9), abs=1e-6)
    assert got(1, 0.1) == pytest.approx(math.log(0.3 / 0.9), abs=1e-6)
    assert got(2, 0.1) == NEG  # noise: proxy probability 0
    # min_p 0.05: the threshold 0.03 keeps every token, so the proxy is the policy
    assert got(2, 0.05) == pytest.approx(math.log(0.05), abs=1e-6)
    # min_p 1: only the most likely token, with probability 1
    assert got(0, 1.0) == pytest.approx(0.0, abs=1e-6) and got(1, 1.0) == NEG


def test_selection_takes_the_lowest_probability_share_of_negative_advantage_tokens_not_filtered():
    logp = torch.tensor([[-0.1, -3.0, -2.0, -5.0], [-4.0, -0.5, -6.0, -1.0]])
    proxy = torch.tensor([[0.0, -2.5, -1.0, NEG], [-3.0, -0.2, -5.5, -0.4]])
    adv = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    # negative-advantage tokens on the mask: (0,0) -0.1, (0,1) -3, (0,2) -2, (0,3) -5, (1,1) -0.5 -> n = 5
    got = lp_reg_selection(logp, proxy, adv, mask, frac=0.5)  # k = floor(2.5) = 2: (0,3) and (0,1)
    want = torch.zeros(2, 4, dtype=torch.bool)
    want[0, 1] = True  # (0,3) is filtered by the proxy (-inf): dropped
    assert torch.equal(got, want)
    # a share below one token still takes the lowest one (here the filtered (0,3): nothing left)
    assert not lp_reg_selection(logp, proxy, adv, mask, frac=0.01).any()
    # positive-advantage (1,0), (1,2) and masked (1,3) tokens are never taken
    every = lp_reg_selection(logp, proxy, adv, mask, frac=1.0)
    assert torch.equal(every, torch.tensor([[True, True, True, False], [False, True, False, False]]))
    assert not lp_reg_selection(logp, proxy, torch.ones_like(adv), mask, frac=1.0).any()


def test_the_penalty_is_k3_toward_the_proxy_and_pushes_selected_tokens_up():
    logp = torch.tensor([[-3.0, -2.0, -1.0]], requires_grad=True)
    proxy = torch.tensor([[-2.5, NEG, -0.5]])
    selected = torch.tensor([[True, False, True]])
    pen = lp_reg_penalty(logp, proxy, selected)
    x = 0.5  # proxy - logp on both selected tokens
    assert pen.tolist()[0] == pytest.approx([math.exp(x) - x - 1, 0.0, math.exp(x) - x - 1], abs=1e-6)
    pen.sum().backward()
    g = logp.grad[0]
    # d/dlogp (e^x - x - 1) = -(e^x - 1) < 0: descending the loss raises the selected log-probs
    assert g[0].item() == pytest.approx(-(math.exp(x) - 1), abs=1e-6) and g[1].item() == 0.0
    assert torch.isfinite(logp.grad).all()  # the -inf proxy of an unselected token never reaches exp


RUN = ["seed=2", "threads=1", "log.progress=false", "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
       "task.name=arithmetic", "task.difficulty=1", "task.num_train=128", "task.num_test=16",
       "sft.steps=60", "sft.batch_size=32", "sft.lr=0.01", "sft.warmup_steps=1",
       "rl.steps=3", "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16",
       "eval.num_examples=8", "eval.max_new_tokens=16", "checkpoint.every=1000"]


def _rl_rows(tmp_path, name, extra):
    train(prepare(build_config({}, [*RUN, *extra])), tmp_path / name)
    return [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if "losses/policy" in r]


def test_in_a_run_the_term_is_logged_acts_on_few_tokens_and_ignores_micro_batching(tmp_path):
    on = ["algo.lp_reg_coef=1.0", "algo.lp_reg_frac=0.2"]
    whole = _rl_rows(tmp_path, "whole", [*on, "optim.micro_batch_size=64"])
    small = _rl_rows(tmp_path, "small", [*on, "optim.micro_batch_size=3"])
    assert any(r["losses/lp_reg"] > 0 for r in whole)
    assert all(0 <= r["losses/lp_reg_tokens"] <= 0.2 for r in whole)
    for a, b in zip(whole, small):  # the selection is the whole batch's, the penalty token-weighted
        for key in ("losses/lp_reg", "losses/lp_reg_tokens", "losses/policy", "rollout/accuracy"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    off = _rl_rows(tmp_path, "off", [])
    assert "losses/lp_reg" not in off[0]  # off by default: no term, no forward, no metric
