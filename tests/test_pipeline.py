"""The RL step as a pipeline (issue 12): the behaviour changes the refactor made on purpose.

Each test pins one change that moved golden numbers (tests/golden records them):
- reward shaping runs once per step, over exactly the groups that are trained (it ran once per
  sampling draw, and again over the mixer's rebuilt groups alone, so batch-relative shaping such as
  ``grpo_lambda`` ranked a different set of groups in each call);
- dynamic sampling selects on the verifier's rewards (DAPO's accuracy filter), since shaping comes
  after selection;
- the proximal forward of decoupled IS (``rollout.stale_is_cap``) counts in ``perf/fwd_tokens``;
- (the hint cost that counted only H of H x G hinted rows: tests/mix/test_mix_revisions.py).

Issue 17 re-recorded every golden case: sampling numbers are keyed per request, row and position
(``graft.rollout.rng``, docs/sampling_rng.md) instead of drawn from one generator per run, which
changes every sampled token (at near-greedy temperature the golden metrics were checked to be
unchanged). ``test_every_sampled_request_is_keyed_by_step_round_and_index`` pins the keys.
"""


from graft.config import build_config
from graft.rollout.rng import mix
from graft.rollout.sources import IidSource
from graft.rollout.types import Group, Rollout
from graft.tasks.base import Example
from graft.train import rl
from graft.train.collect import EXTRAS, PLAIN, REVISIONS, informative, step_seed
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

TINY = ["seed=0", "threads=1", "log.progress=false", "model.d_model=32", "model.n_layers=2",
        "model.n_heads=2", "task.difficulty=1", "task.num_train=128", "task.num_test=8",
        "sft.steps=60", "sft.batch_size=32", "sft.lr=0.01", "sft.warmup_steps=1", "rl.steps=4",
        "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16", "eval.num_examples=4",
        "eval.max_new_tokens=16", "checkpoint.every=1000"]


def _run(tmp_path, name, overrides):
    train(prepare(build_config({}, TINY + overrides)), tmp_path / name)
    return read_metrics(tmp_path / name / "metrics.jsonl")


def test_shaping_runs_once_per_step_over_the_trained_groups(tmp_path, monkeypatch):
    calls = []
    real = rl.shape_groups

    def spy(groups, shaping, max_new_tokens):
        calls.append([g.example.prompt for g in groups])
        real(groups, shaping, max_new_tokens)

    monkeypatch.setattr(rl, "shape_groups", spy)
    rows = _run(tmp_path, "a", ["shaping.length=grpo_lambda", "mix.schedule=hints",
                                "select.dynamic_sampling=true", "select.max_extra_prompts=8"])
    rl_rows = [r for r in rows if "rollout/accuracy" in r]
    assert len(calls) == len(rl_rows) == 4  # once per RL step, however many draws and revisions
    for prompts, row in zip(calls, rl_rows):
        assert len(prompts) == row["select/kept_groups"] == row.get("batch/groups", 0.0)


def test_selection_reads_the_verifier_not_the_shaped_reward():
    ex = Example("1+1=", "2")

    def group(verifier, shaped):
        return Group(ex, [Rollout([1], [2], [0.0], 0, "stop", verifier_reward=v, shaped_reward=s)
                          for v, s in zip(verifier, shaped)])

    # all correct but of different lengths: shaping would spread the rewards, DAPO still drops it
    assert informative([group([1, 1, 1], [1.0, 0.8, 0.6]), group([0, 1, 0], [0, 1, 0])]) == [False, True]


def test_the_proximal_forward_of_decoupled_is_counts_as_compute(tmp_path):
    # every row trained, so that the trained tokens are the whole batch's (with skipping, the rows
    # of all-equal groups are not trained but the proximal forward still covers them)
    base = ["rollout.strategy=partial", "rollout.over_provision=2", "optim.skip_zero_advantage=false"]
    plain = _run(tmp_path, "plain", base)
    capped = _run(tmp_path, "capped", base + ["rollout.stale_is_cap=0.5"])
    # the runs are identical until the first step with stale tokens; there the capped run adds one
    # no-grad forward of the whole batch (its real tokens = the step's trained tokens, one pass)
    first = next(i for i, r in enumerate(plain) if r.get("rollout/off_policy_token_frac", 0) > 0)
    assert all(plain[i]["perf/fwd_tokens"] == capped[i]["perf/fwd_tokens"] for i in range(first))
    extra = capped[first]["perf/fwd_tokens"] - plain[first]["perf/fwd_tokens"]
    assert extra == plain[first]["perf/train_tokens"] > 0


def test_every_sampled_request_is_keyed_by_step_round_and_index(tmp_path, monkeypatch):
    """Issue 17 (golden re-recorded): the requests of every sampling call of step k carry
    ``mix(step_seed(seed, k), round, kind, index)``; a step's first call is round 0's own requests,
    and the hint schedule's revisions are keyed as revisions."""
    calls = []
    real = IidSource.generate

    def spy(self, policy, requests, version):
        calls.append((version, [r.seed for r in requests], any(r.replaces is not None for r in requests)))
        return real(self, policy, requests, version)

    monkeypatch.setattr(IidSource, "generate", spy)
    _run(tmp_path, "keyed", ["mix.schedule=hints", "seed=3"])
    firsts = set()
    for version, seeds, revision in calls:
        key = step_seed(3, version)
        kinds = [(r, k) for r in range(3) for k in (PLAIN, REVISIONS, EXTRAS)
                 if seeds == [mix(key, r, k, i) for i in range(len(seeds))]]
        assert len(kinds) == 1, (version, seeds)
        assert kinds[0][1] == (REVISIONS if revision else PLAIN)
        if kinds[0] == (0, PLAIN):
            firsts.add(version)
    assert firsts == set(range(60, 64))  # every RL step's first call
    assert any(revision for *_, revision in calls)
