"""The data that flows between the stages of an RL step (plain, picklable dataclasses).

    Request --(rollout source)--> Group of Rollouts --(verifier)--> verified --(shaping)--> trained

A ``Request`` says what to sample; a rollout source (``graft.rollout.sources``) turns a list of
them into one ``Group`` each; the verifier fills ``Rollout.verifier_reward`` / ``correct`` /
``parts`` (``graft.rewards.scoring``); reward shaping fills ``Rollout.shaped_reward`` once, over
the step's final groups (``graft.rewards.shaping.shape_groups``). Nothing here holds a model, a
tokenizer or a callback, so requests and groups can cross process boundaries (Ray workers).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from graft.tasks.base import Example


@dataclass(frozen=True)
class Request:
    """What to sample for one example.

    example:       the task item (its prompt is tokenized by the source).
    n:             completions to sample (a group has ``keep + n`` rollouts, plus the
                   demonstration when ``demonstration`` is set).
    prefix:        token ids every completion starts with (a hint: the first tokens of the
                   demonstration). They are placed, not sampled: behaviour log-probability 0,
                   ``Rollout.demo_len`` counts them, and the completion (prefix included) stays
                   within ``rl.max_new_tokens``.
    demonstration: place the example's demonstration (+ EOS) as one more, off-policy member
                   (LUFFY), trained with the policy-shaping loss.
    replaces:      index, in the list of groups the request was made from, of the group the
                   result replaces (a mixer revision); None = a new group (a DARS extra, a
                   refill).
    keep:          with ``replaces``: how many of the replaced group's first rollouts stay in front.
    seed:          the request's key (``graft.rollout.rng``), set by the driver from (run seed,
                   step, round, index in the round; ``graft.train.collect.keyed``): completion j
                   draws its tokens from row key ``mix(seed, j)``, so what it samples does not
                   depend on the other requests of a call, their order or the worker.
    """

    example: Example
    n: int
    prefix: tuple[int, ...] = ()
    demonstration: bool = False
    replaces: int | None = None
    keep: int = 0
    seed: int = 0


@dataclass
class Rollout:
    """One completion and everything the update needs about it.

    prompt_ids:      prompt token ids (no padding).
    completion_ids:  completion token ids, EOS included when the row stopped on it.
    logprobs:        per-token log-probabilities of completion_ids under the behaviour policy
                     (the sampler's; 0 for placed tokens, see ``demo_len``).
    policy_version:  the policy version (optimizer updates so far) whose weights sampled it.
    finish_reason:   'stop' (emitted EOS), 'length' (hit its token budget) or 'aborted' (a
                     partial rollout still running).
    text:            decoded completion (specials dropped).
    verifier_reward, correct, parts: the verifier's scalar, verdict and named reward components.
    shaped_reward:   the reward the advantages use: the verifier's plus length shaping and the
                     overlong penalty (``graft.rewards.shaping``); None until shaped.
    demo_len:        leading completion tokens copied from a demonstration rather than sampled
                     (a hint prefix, an injected demonstration; ``graft.mix``); their behaviour
                     probability is taken as 1, so their ``logprobs`` are 0.
    policy_shaping:  those tokens take LUFFY's policy-shaping loss instead of the ratio loss.
    token_versions:  per completion token, the policy version that sampled it (partial rollouts);
                     None = every token by ``policy_version``.
    tree_path:       tree rollouts only (``graft.rollout.tree``): ids of the tree nodes (segments
                     between branch points) from the prompt down to this leaf, unique within the
                     group; leaves that share a node share those completion tokens. () = a chain
                     of its own (i.i.d. sampling).
    tree_spans:      tree rollouts only: the completion offset where each node of ``tree_path``
                     ends (so node j holds completion tokens ``tree_spans[j-1]:tree_spans[j]``).
    key:             the row key its sampled tokens were drawn with (``graft.rollout.rng``): the
                     token at completion position t was drawn at ``uniforms(key, t)`` (a tree
                     leaf's is its last node's, whose ancestors drew the shared tokens). A
                     partial row resumes with it. 0 when greedy.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    policy_version: int
    finish_reason: str
    text: str = ""
    verifier_reward: float = 0.0
    correct: bool = False
    parts: dict[str, float] = field(default_factory=dict)
    shaped_reward: float | None = None
    demo_len: int = 0
    policy_shaping: bool = False
    token_versions: list[int] | None = None
    tree_path: tuple[int, ...] = ()
    tree_spans: tuple[int, ...] = ()
    key: int = 0


@dataclass
class Group:
    """The rollouts of one example (GRPO's unit), with the example itself.

    Iterating, indexing and ``len`` go to ``rollouts``. With tree rollouts each rollout's
    ``tree_path`` / ``tree_spans`` hold the tree (``graft.rollout.tree.tree_tensors``)."""

    example: Example
    rollouts: list[Rollout]

    def __iter__(self):
        return iter(self.rollouts)

    def __len__(self) -> int:
        return len(self.rollouts)

    def __getitem__(self, index):
        return self.rollouts[index]

    @property
    def pass_rate(self) -> float:
        """Share of correct completions (the verifier's verdict)."""
        return sum(ro.correct for ro in self.rollouts) / max(len(self.rollouts), 1)

    @property
    def failed(self) -> bool:
        """No completion is correct."""
        return not any(ro.correct for ro in self.rollouts)


def copy_rollout(ro: Rollout) -> Rollout:
    """A copy whose ``parts`` dict is its own (the other fields are immutable or replaced whole)."""
    return replace(ro, parts=dict(ro.parts))


def apply_revisions(groups: list[Group], requests: list[Request], revised: list[Group]
                    ) -> tuple[list[Group], list[Group]]:
    """Groups after a round of revision requests: a request with ``replaces = i`` puts copies of
    ``groups[i]``'s first ``keep`` rollouts in front of its own result in place of group i; one
    without ``replaces`` adds its group at the end. Returns (all groups, the added ones). The
    input groups and their rollouts are not modified."""
    out, added = list(groups), []
    for request, group in zip(requests, revised):
        if request.replaces is None:
            out.append(group)
            added.append(group)
            continue
        kept = [copy_rollout(ro) for ro in groups[request.replaces].rollouts[: request.keep]]
        out[request.replaces] = Group(group.example, kept + group.rollouts)
    return out, added
