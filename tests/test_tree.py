"""Tree / segment rollouts (TreePO): structure, correct behaviour log-probabilities, fewer generated
tokens than i.i.d., config checks, per-token tree advantages in the batch, and a resumable run."""

import math
import shutil

import pytest
import torch

from graft.algos.advantages import grpo_advantages, tree_segment_advantages
from graft.config import ConfigError, build_config
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.rollout.sampler import sample
from graft.rollout.tree import generated_tokens, sample_tree, token_metrics, tree_tensors
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.batch import completion_logprobs, make_batch
from graft.train.collect import sample_groups
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train
from graft.train.registry import check_names
from graft.train.rl import Learner
from graft.train.targets import build_batch

PROMPTS = ["12+3=", "7-5=", "99+99="]
G = 8


def _policy():
    torch.set_num_threads(1)
    return TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=2),
                             seed=0)


class CountingPolicy:
    """Delegates to a policy and counts the token positions its forward passes compute."""

    def __init__(self, policy):
        self.policy, self.tokenizer, self.rows = policy, policy.tokenizer, 0

    def forward(self, ids, *args, **kwargs):
        self.rows += ids.numel()
        return self.policy.forward(ids, *args, **kwargs)

    def select_cache_rows(self, cache, index):
        return self.policy.select_cache_rows(cache, index)


def _tree(policy, seed=0, **kw):
    prompts = [policy.tokenizer.encode(p) for p in PROMPTS]
    args = {"num_generations": G, "max_new_tokens": 24, "temperature": 1.0, "segment_len": 4, "branch": 2,
            "max_depth": 3}
    out = sample_tree(policy, prompts, keys=seed, **(args | kw))
    return [out[i * G : (i + 1) * G] for i in range(len(PROMPTS))]


def _teacher_forced_gap(policy, rollouts):
    batch = make_batch([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts],
                       policy.tokenizer.pad_id, [r.logprobs for r in rollouts])
    with torch.no_grad():
        logp, _ = completion_logprobs(policy, batch)
    return float(((logp - batch.old_logprobs) * batch.loss_mask).abs().max())


def test_flat_tree_is_iid_sampling_with_correct_logprobs():
    pol = _policy()
    groups = _tree(pol, branch=G, max_depth=1)  # the root branches into G chains: i.i.d.
    for p, g in enumerate(groups):
        assert len(g) == G
        assert all(ro.prompt_ids == pol.tokenizer.encode(PROMPTS[p]) for ro in g)
        assert len({ro.tree_path for ro in g}) == G and all(len(ro.tree_path) == 1 for ro in g)
        assert generated_tokens(g) == sum(len(ro.completion_ids) for ro in g)
    assert token_metrics(groups)["rollout/prefix_share"] == 0.0
    flat = [ro for g in groups for ro in g]
    assert _teacher_forced_gap(pol, flat) < 1e-4  # behaviour log-probs = the policy's, token by token


def test_deep_tree_shares_prefixes_generates_fewer_tokens_and_keeps_logprobs():
    pol = _policy()
    counting = CountingPolicy(pol)
    groups = _tree(counting)
    flat = [ro for g in groups for ro in g]
    assert all(len(g) == G for g in groups)
    assert _teacher_forced_gap(pol, flat) < 1e-4
    for g in groups:  # leaves sharing a node share exactly that node's tokens
        for a in g:
            for b in g:
                for j, (na, nb) in enumerate(zip(a.tree_path, b.tree_path)):
                    if na != nb:
                        break
                    start = a.tree_spans[j - 1] if j else 0
                    assert a.completion_ids[start : a.tree_spans[j]] == b.completion_ids[start : b.tree_spans[j]]
                    assert a.logprobs[start : a.tree_spans[j]] == b.logprobs[start : b.tree_spans[j]]
    iid_counting = CountingPolicy(pol)
    prompts = [pol.tokenizer.encode(p) for p in PROMPTS]
    iid = sample(iid_counting, prompts, max_new_tokens=24, temperature=1.0, repeats=G,
                 keys=0)
    tree_m = token_metrics(groups)
    iid_m = token_metrics([iid[i * G : (i + 1) * G] for i in range(len(PROMPTS))])
    assert tree_m["rollout/tokens_per_rollout"] < iid_m["rollout/tokens_per_rollout"]
    assert tree_m["rollout/prefix_share"] > 0.1
    assert counting.rows < iid_counting.rows  # fewer token positions through the model


def test_entropy_rule_decides_where_to_branch():
    pol = _policy()
    always = _tree(pol, max_depth=3)
    never = _tree(pol, max_depth=3, branch_entropy=100.0)  # no segment is that uncertain
    assert max(len(ro.tree_path) for g in always for ro in g) == 3  # root, segment 1, segment 2
    # no voluntary branch: the root's two nodes keep their leaves until the last branch point
    assert all(len(g) == G for g in never)
    assert max(len(ro.tree_path) for g in never for ro in g) <= 2
    nodes = [len({n for g in tree for ro in g for n in ro.tree_path}) for tree in (always, never)]
    assert nodes[1] < nodes[0]


def test_same_keys_same_tree():
    pol = _policy()
    a, b = _tree(pol, seed=3), _tree(pol, seed=3)
    assert [[r.completion_ids for r in g] for g in a] == [[r.completion_ids for r in g] for g in b]


@pytest.mark.parametrize("overrides, key", [
    (["rollout.strategy=tree", "rl.num_generations=8", "rollout.branch=2", "rollout.max_depth=2"], "rollout.branch"),
    (["rollout.strategy=tree", "rl.max_new_tokens=16", "rollout.segment_len=8", "rollout.max_depth=3"],
     "rollout.max_depth"),
    (["algo.advantage=tree"], "algo.advantage"),
    (["rollout.strategy=forest"], "rollout.strategy"),
    (["rollout.branch=1"], "rollout.branch"),
    (["rollout.partial=true"], "rollout.partial"),  # replaced by rollout.strategy=partial
])
def test_bad_tree_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        check_names(build_config({}, overrides))


def test_tree_advantages_reach_the_batch_per_token():
    cfg = build_config({}, ["rl.num_generations=4", "rl.max_new_tokens=12", "rollout.strategy=tree",
                            "rollout.segment_len=3", "rollout.branch=2", "rollout.max_depth=2",
                            "algo.advantage=tree_segment"])
    check_names(cfg)
    policy = _policy()
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    groups = sample_groups(policy, task, task.train_examples()[:3], cfg, 0, 0)
    for i, ro in enumerate(ro for g in groups for ro in g):
        ro.shaped_reward = float(i % 3)
    batch, _ = build_batch(Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0)), groups, cfg)
    rewards = torch.tensor([[ro.shaped_reward for ro in g] for g in groups])  # (P, G)
    ancestors, token_node = tree_tensors(groups, batch.loss_mask.shape[1])
    want = tree_segment_advantages(rewards, ancestors, token_node, batch.loss_mask)
    assert torch.equal(batch.advantages, want)
    # the first node's tokens carry GRPO's advantage (only the root sub-group differs in them)
    grpo = grpo_advantages(rewards).reshape(-1)
    flat = [ro for g in groups for ro in g]
    for i, ro in enumerate(flat):
        n = ro.tree_spans[0]
        assert torch.allclose(batch.advantages[i, :n], grpo[i].expand(n), atol=1e-5)
    assert len({float(batch.advantages[i, ro.tree_spans[-1] - 1]) for i, ro in enumerate(flat)}) > 1


TREE = ["rollout.strategy=tree", "rollout.segment_len=6", "rollout.branch=2", "rollout.max_depth=2",
        "algo.advantage=tree", "sft.steps=2", "rl.steps=4", "checkpoint.every=1", "checkpoint.keep=10"]


def test_tree_training_runs_and_resumes_exactly(tmp_path, tiny_overrides):
    setup = prepare(build_config({}, tiny_overrides + TREE))
    train(setup, tmp_path / "ref")
    reference = read_metrics(tmp_path / "ref" / "metrics.jsonl")
    rl = [r for r in reference if "losses/policy" in r]
    assert len(rl) == 4
    for r in rl:
        assert all(math.isfinite(v) for v in r.values())
        assert r["rollout/prefix_share"] > 0 and r["rollout/tokens_per_rollout"] < r["rollout/completion_len"]
    # a run stopped after step 4 (two RL steps) resumes to the same metrics
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "ref", cut)
    for step in (5, 6):
        shutil.rmtree(cut / "checkpoints" / f"step_{step}")
    (cut / "summary.json").unlink()
    train(prepare(build_config({}, tiny_overrides + TREE)), cut, resume=True)
    resumed = read_metrics(cut / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    for want, got in zip(reference, resumed):
        for key in ("losses/policy", "rollout/reward_mean", "rollout/generated_tokens", "optim/grad_norm"):
            if key in want:
                assert want[key] == got[key], (want["step"], key)
