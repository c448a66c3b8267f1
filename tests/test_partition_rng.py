"""Samples do not depend on the partition (issue 17): a request's completions are a function of the
weights, the request and its ``seed``, whichever other requests share its sampling call, in
whatever order, and so on one worker or several. Sampled evaluation does not depend on
``eval.batch_size``.

Splitting or reordering a call changes its padding, so logits can differ in their last float bits:
log-probabilities are compared to 1e-5 and tokens exactly (no near-tie flips a token for the keys
used here, the first ones tried)."""

import pytest
import torch

from graft.config import build_config
from graft.eval.evaluate import decode, evaluate_both, evaluate_periodic
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.rollout.rng import mix
from graft.rollout.sources import ROLLOUT_SOURCES
from graft.rollout.types import Request
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.collect import PLAIN, REVISIONS, keyed, step_seed

G = 4
BASE = [f"rl.num_generations={G}", "rl.max_new_tokens=14", "rl.num_prompts=8"]
SOURCES = {
    "iid": [],
    "tree": ["rollout.strategy=tree", "rollout.segment_len=3", "rollout.branch=2", "rollout.max_depth=3"],
    # rl.num_prompts above the groups of any call: no group stop, every row decodes to its end
    "partial": ["rollout.strategy=partial", "rollout.over_provision=1"],
}


def _policy(eos_scale=4.0):
    """The tiny seeded policy, EOS made a stronger copy of a common token so rows end at
    different steps (the batch shrinks as they do)."""
    torch.set_num_threads(1)
    pol = TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=2),
                            seed=0)
    with torch.no_grad():
        head = pol.module.tok_emb.weight  # (V, C), tied to the LM head
        head[pol.tokenizer.eos_id] = eos_scale * head[33]
    return pol


def _examples(n=4):
    return ArithmeticTask(difficulty=2, num_train=20, num_test=4).train_examples()[:n]


def _same(a, b):
    """Groups ``a`` and ``b`` hold the same rollouts: tokens, finish, keys, tree structure equal;
    log-probabilities to 1e-5."""
    assert len(a) == len(b)
    for ga, gb in zip(a, b):
        assert ga.example == gb.example and len(ga) == len(gb)
        assert _tree(ga) == _tree(gb)
        for x, y in zip(ga, gb):
            assert x.completion_ids == y.completion_ids
            assert (x.finish_reason, x.key, x.demo_len, x.tree_spans) == (y.finish_reason, y.key, y.demo_len, y.tree_spans)
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-5)


def _tree(group):
    """The group's tree paths with node ids renumbered in order of appearance (ids are unique per
    sampling call, so they depend on the other trees of the call; the structure does not)."""
    ids: dict[int, int] = {}
    return [tuple(ids.setdefault(n, len(ids)) for n in ro.tree_path) for ro in group]


def _generate(cfg, policy, requests):
    groups, _ = ROLLOUT_SOURCES[cfg.rollout.strategy](cfg).generate(policy, requests, version=0)
    return groups


@pytest.mark.parametrize("strategy", sorted(SOURCES))
def test_a_requests_samples_do_not_depend_on_the_others_in_its_call(strategy):
    cfg, policy = build_config({}, BASE + SOURCES[strategy]), _policy()
    requests = keyed([Request(ex, n=G) for ex in _examples()], step_seed(0, 3), 0, PLAIN)
    a, b = requests[:2], requests[2:]
    together = _generate(cfg, policy, a + b)
    apart = _generate(cfg, policy, a) + _generate(cfg, policy, b)
    reversed_ = _generate(cfg, policy, b[::-1] + a[::-1])
    if strategy == "partial":  # the groups come back in buffer order: put them in request order
        order = {r.example.prompt: i for i, r in enumerate(requests)}
        for groups in (together, apart, reversed_):
            groups.sort(key=lambda g: order[g.example.prompt])
    else:
        reversed_ = reversed_[2:][::-1] + reversed_[:2][::-1]
    assert len(together) == 4 and len({ro.key for g in together for ro in g}) > 4  # rows differ
    assert len({len(ro.completion_ids) for g in together for ro in g}) > 2  # rows end at different steps
    if strategy == "tree":
        assert max(len(ro.tree_path) for g in together for ro in g) == 2  # the root's 2 nodes branched
    _same(together, apart)
    _same(together, reversed_)


def test_revisions_do_not_depend_on_the_others_in_their_call():
    """Hint revisions (a prefix: the call's budget comes from its shortest hint) and an injected
    demonstration, sampled together, apart and reversed."""
    cfg, policy = build_config({}, BASE), _policy()
    tok = policy.tokenizer
    ex = _examples()
    revisions = keyed([
        Request(ex[0], n=G, prefix=tuple(tok.encode(ex[0].demonstration)[:1]), replaces=0),
        Request(ex[1], n=0, demonstration=True, replaces=1, keep=G - 1),
        Request(ex[2], n=2, prefix=tuple(tok.encode(ex[2].demonstration)[:5]), replaces=2, keep=2),
        Request(ex[3], n=G, prefix=tuple(tok.encode(ex[3].demonstration)[:3]), replaces=3),
    ], step_seed(0, 3), 0, REVISIONS)
    together = _generate(cfg, policy, revisions)
    apart = [g for r in revisions for g in _generate(cfg, policy, [r])]
    reversed_ = _generate(cfg, policy, revisions[::-1])[::-1]
    assert together[1][0].policy_shaping and together[0][0].demo_len == 1
    _same(together, apart)
    _same(together, reversed_)


def test_a_partial_row_draws_the_same_tokens_whichever_step_finishes_it():
    """A group aborted by the group stop and finished a step later (same weights) holds the tokens
    it has when decoded in one go: a buffered row keeps its key and its positions."""
    policy = _policy(eos_scale=6.0)  # one group completes after a token, the others are cut there
    stepwise = build_config({}, [f"rl.num_generations={G}", "rl.max_new_tokens=14", "rl.num_prompts=1",
                                 "rollout.strategy=partial", "rollout.over_provision=4"])
    requests = keyed([Request(ex, n=G) for ex in _examples()], step_seed(0, 3), 0, PLAIN)
    source = ROLLOUT_SOURCES["partial"](stepwise)
    first, _ = source.generate(policy, requests, version=0)
    buffered = [ex for ex, g in source.buffer.pending if any(ro.completion_ids for ro in g)]
    assert buffered and any(ro.finish_reason == "aborted" for _, g in source.buffer.pending for ro in g)
    later = []
    for _ in range(4):  # no new prompts: the buffer drains
        groups, _ = source.generate(policy, [], version=0)
        later += groups
    one_go = _generate(build_config({}, BASE + SOURCES["partial"]), policy, requests)
    by_prompt = {g.example.prompt: g for g in one_go}
    resumed = [g for g in first + later if g.example in buffered]
    assert resumed
    for g in first + later:
        _same([g], [by_prompt[g.example.prompt]])


def test_sampled_evaluation_does_not_depend_on_the_batch_size():
    policy = _policy()
    task = ArithmeticTask(difficulty=2, num_train=20, num_test=9)
    examples = task.test_examples()
    runs = [decode(policy, task, examples, repeats=3, max_new_tokens=12, batch_size=size, temperature=1.0,
                   seed=mix(5, 1)) for size in (1, 7)]
    assert runs[0] == runs[1]  # every graded completion: verdict, reward, answer, length
    assert len({g.length for g in runs[0]}) > 2
    results = []
    for size in (1, 7):
        cfg = build_config({}, ["eval.num_examples=9", "eval.max_new_tokens=12", f"eval.batch_size={size}",
                                "eval.sampled_every=1"])
        results.append((evaluate_both(policy, task, cfg.eval, seed=2),
                        evaluate_periodic(policy, task, cfg.eval, 2, 4, greedy=True, sampled=True)))
    assert results[0] == results[1]


def test_keyed_requests_by_hand():
    requests = keyed([Request(ex, n=G) for ex in _examples(2)], 99, 2, REVISIONS)
    assert [r.seed for r in requests] == [mix(99, 2, REVISIONS, 0), mix(99, 2, REVISIONS, 1)]
    assert step_seed(0, 3) == mix(0, 0x524F4C4C, 3) != step_seed(0, 4)
