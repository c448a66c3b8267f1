"""Tree / segment rollouts (TreePO): completions grow in segments and branch, so siblings share prefixes.

TreePO (Li et al. 2025, "TreePO: Bridging the Gap of Policy Optimization and Efficacy and
Inference Efficiency with Heuristic Tree-based Modeling", arXiv 2508.17445, Sec. 3, segment-wise
tree sampling) decodes every completion of a prompt in fixed-length segments of
``segment_len`` tokens. At the start and after each of the first ``max_depth - 1`` segments a node
may *branch*: its KV-cache row is copied (``policy.select_cache_rows``) to ``branch`` children that
continue independently, so the tokens before the branch point are generated once and shared by
every leaf below it. Each prompt still yields exactly ``num_generations`` leaves (the group):

- every node carries a *budget*, the number of leaves it must produce; the prompt starts with
  ``num_generations``; a branching node splits its budget over ``min(branch, budget)`` children
  as evenly as possible; a node with budget 1 is a chain and never branches;
- uncertainty rule: at a segment boundary a node branches only if the mean token entropy of the
  segment it just wrote is at least ``branch_entropy`` (0 = always branch). A node that still holds
  more than one leaf at the last boundary (``max_depth - 1`` segments in) splits into all of them;
- a node that stops (EOS) before its budget is spent gives the rest to the open node of the same
  prompt that shares the longest path with it and can still branch (TreePO's fallback); budget left
  with no such node is sampled afterwards as i.i.d. chains from the prompt.

The prompt is at the root and always branches (``min(branch, num_generations)`` first nodes): with
``branch >= num_generations`` and ``max_depth = 1`` the tree is i.i.d. sampling.

Deviations from TreePO: no early stopping of low-value paths (repetition / answer checks); no
log-probability-driven allocation of branches (the paper reports it hurt); the branching rule is the
segment's mean entropy, one of the local-uncertainty signals the paper discusses, with an
always-branch mode. The leaves are ordinary ``Rollout`` objects (full prompt and completion, the
sampling log-probabilities of every token), with ``tree_path`` / ``tree_spans`` recording the tree
for the advantage estimators ``tree`` / ``tree_segment`` (``graft.algos.advantages``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from graft.models.policy import Policy, device_of
from graft.rollout import rng
from graft.rollout.decode import DecodeBatch, Stops
from graft.rollout.sampler import Group, Rollout, sample


@dataclass
class _Node:
    """A run of tokens between two branch points."""

    prompt: int
    path: tuple[int, ...]  # node ids from the prompt's first node down to this one
    key: int  # its tokens' row key (graft.rollout.rng): mix(parent's key, branch index)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def split_budget(n: int, k: int) -> list[int]:
    """``n`` leaves over ``k`` children, as evenly as possible, larger shares first."""
    return [n // k + (i < n % k) for i in range(k)]


@torch.no_grad()
def sample_tree(
    policy: Policy,
    prompts: list[list[int]],
    *,
    num_generations: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    keys: int | list[int] = 0,
    policy_version: int = 0,
    segment_len: int,
    branch: int,
    max_depth: int,
    branch_entropy: float = 0.0,
    stop_strings: tuple[str, ...] | list[str] = (),
    clock: dict[str, float] | None = None,
) -> list[Rollout]:
    """``num_generations`` leaves per prompt, prompt-major (all of prompt 0's, then 1's ...).

    All live rows advance one token per step in lockstep (branching copies rows at the same
    step), so segment boundaries are the steps ``t = segment_len, 2 segment_len, ...``. Finished
    rows leave the decode batch and the cache. Each leaf's ``logprobs`` are the tempered
    log-probabilities its tokens were sampled with, shared prefix included. A row ends on a stop
    id or when its text (the whole path's) ends with one of ``stop_strings``.

    ``keys``: each prompt's tree key (P; a request's seed), or one int ``s`` for prompt p's to be
    ``rng.mix(s, p)``. The root's i-th first node has row key ``mix(tree key, i)``, a child the
    key ``mix(parent's key, its branch index)``, and a node's token at depth t (tokens from the
    prompt) is drawn at ``rng.uniforms(node key, t)``: a tree depends only on its prompt, its
    key and the weights, not on the other trees of the call. The fallback's m-th chain of a prompt
    has key ``mix(tree key, num_generations + m)``. ``clock``: gains the seconds of the prefills
    (the prompts', and the fallback chains' when there are any; ``DecodeBatch.prefill``)."""
    tok, G = policy.tokenizer, num_generations
    device = device_of(policy)
    stops = Stops(tok, stop_strings, device)
    by_string: set[int] = set()  # leaves ended by a stop string
    batch = DecodeBatch.prefill(policy, prompts, clock)  # P rows
    nodes: list[_Node] = []
    tree_key = [rng.mix(keys, p) for p in range(len(prompts))] if isinstance(keys, int) else list(keys)
    if len(tree_key) != len(prompts):
        raise ValueError(f"sample_tree: {len(prompts)} prompts need {len(prompts)} keys")

    def new_node(prompt: int, parent: tuple[int, ...], key: int) -> int:
        nodes.append(_Node(prompt, (*parent, len(nodes)), key))
        return len(nodes) - 1

    def numbers(t: int) -> torch.Tensor | None:
        """(b, L) the live rows' uniforms for depths t .. the next branch point (or the end)."""
        if temperature == 0:
            return None
        length = min(segment_len if t < last_boundary else max_new_tokens, max_new_tokens - t)
        return rng.table([nodes[n].key for n in row_node], [t] * len(row_node), length, device)

    # the root: every prompt branches into its first nodes
    index, row_node, row_budget = [], [], []
    for p in range(len(prompts)):
        for i, share in enumerate(split_budget(G, min(branch, G))):
            index.append(p)
            row_node.append(new_node(p, (), rng.mix(tree_key[p], i)))
            row_budget.append(share)
    batch.branch(torch.tensor(index, device=device))  # (b,) row -> prompt
    seg_entropy = torch.zeros(len(row_node), device=device)  # (b,) entropy summed over the current segment
    leaves: list[int] = []  # finished node ids, one leaf each
    leftover = [0] * len(prompts)  # budget no open node could take
    last_boundary = (max_depth - 1) * segment_len  # no branching after this step
    table, table_start = numbers(0), 0  # (b, L) uniforms of the current segment, from depth table_start

    for t in range(max_new_tokens):
        if 0 < t <= last_boundary and t % segment_len == 0:  # ---- a branch point
            last = t == last_boundary
            index, nxt_node, nxt_budget = [], [], []
            for r, (nid, n) in enumerate(zip(row_node, row_budget)):
                uncertain = branch_entropy <= 0 or float(seg_entropy[r]) / segment_len >= branch_entropy
                if n > 1 and (last or uncertain):
                    for c, share in enumerate(split_budget(n, n if last else min(branch, n))):
                        index.append(r)
                        nxt_node.append(new_node(nodes[nid].prompt, nodes[nid].path, rng.mix(nodes[nid].key, c)))
                        nxt_budget.append(share)
                else:
                    index.append(r)
                    nxt_node.append(nid)
                    nxt_budget.append(n)
            if len(index) > len(row_node):  # copy the branching rows' cache to their children
                batch.branch(torch.tensor(index, device=device))  # (b',) child -> parent row
            row_node, row_budget = nxt_node, nxt_budget
            seg_entropy = torch.zeros(len(row_node), device=device)
            table, table_start = numbers(t), t

        uniform = None if table is None else table[:, t - table_start]  # (b,) each row's own number
        tokens, logp, entropy = batch.pick(
            temperature, top_p, uniform, entropy=branch_entropy > 0)  # (b,), (b,), (b,) or None
        if entropy is not None:
            seg_entropy = seg_entropy + entropy
        for r, nid in enumerate(row_node):
            nodes[nid].tokens.append(int(tokens[r]))
            nodes[nid].logprobs.append(float(logp[r]))
        at_id = stops.at_id(tokens)  # (b,)
        done = at_id | (t == max_new_tokens - 1)  # (b,)
        if stops.strings:  # the row's text is its whole path's
            for r, (nid, on_id) in enumerate(zip(row_node, at_id.tolist())):
                if not on_id and stops.ends_with_string([x for n in nodes[nid].path for x in nodes[n].tokens]):
                    by_string.add(nid)
                    done[r] = True
        open_rows = [r for r in range(len(row_node)) if not done[r]]
        can_branch_later = t + 1 <= last_boundary
        for r in done.nonzero()[:, 0].tolist():  # finished rows: one leaf each
            nid = row_node[r]
            leaves.append(nid)
            if row_budget[r] > 1:
                _hand_over(nodes, nid, row_budget[r] - 1, open_rows if can_branch_later else [],
                           row_node, row_budget, leftover)
        if not open_rows:
            break
        keep = None  # all rows stay: no cache copy
        if len(open_rows) < len(row_node):  # finished rows leave the batch and the cache
            keep = torch.tensor(open_rows, device=device)  # (b',)
            row_node = [row_node[r] for r in open_rows]
            row_budget = [row_budget[r] for r in open_rows]
            seg_entropy = seg_entropy[keep]
            table = None if table is None else table[keep]
        batch.advance(tokens, keep)

    groups: list[list[Rollout]] = [[] for _ in prompts]
    for nid in sorted(leaves, key=lambda n: nodes[n].path):  # siblings next to each other
        path = nodes[nid].path
        completion = [x for n in path for x in nodes[n].tokens]
        spans, end = [], 0
        for n in path:
            end += len(nodes[n].tokens)
            spans.append(end)
        groups[nodes[nid].prompt].append(Rollout(
            prompt_ids=list(prompts[nodes[nid].prompt]), completion_ids=completion,
            logprobs=[x for n in path for x in nodes[n].logprobs], policy_version=policy_version,
            finish_reason=stops.reason(completion, nid in by_string) or "length",
            text=tok.decode(completion), tree_path=path, tree_spans=tuple(spans), key=nodes[nid].key,
        ))
    if any(leftover):  # fallback: every branch of a prompt stopped early; the rest as i.i.d. chains
        owners = [p for p, n in enumerate(leftover) for _ in range(n)]
        chain_keys = [rng.mix(tree_key[p], G + m) for p, n in enumerate(leftover) for m in range(n)]
        extra = sample(policy, [prompts[p] for p in owners], max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, keys=chain_keys,
                       policy_version=policy_version, stop_strings=stop_strings, clock=clock)
        for p, k, ro in zip(owners, chain_keys, extra):
            ro.tree_path, ro.tree_spans = (new_node(p, (), k),), (len(ro.completion_ids),)
            groups[p].append(ro)
    assert all(len(g) == G for g in groups), [len(g) for g in groups]
    return [ro for g in groups for ro in g]


def _hand_over(nodes: list[_Node], nid: int, extra: int, open_rows: list[int], row_node: list[int],
               row_budget: list[int], leftover: list[int]) -> None:
    """Give a stopped node's unspent budget to the open node of its prompt with the longest
    common path (its nearest relative), or to the prompt's leftover when there is none."""
    prompt, path = nodes[nid].prompt, nodes[nid].path

    def shared(r: int) -> int:
        other = nodes[row_node[r]].path
        return next((i for i, (a, b) in enumerate(zip(path, other)) if a != b), min(len(path), len(other)))

    same = [r for r in open_rows if nodes[row_node[r]].prompt == prompt]
    if not same:
        leftover[prompt] += extra
        return
    best = max(same, key=lambda r: (shared(r), -r))
    row_budget[best] += extra


# ---------------------------------------------------------------- what the rest of the step reads


def generated_tokens(group: Group) -> int:
    """Tokens the sampler actually generated for a group: a tree node's tokens count once however
    many leaves share them; tokens copied from a demonstration (``demo_len``) are not generated."""
    seen: set[int] = set()
    total = 0
    for ro in group:
        if not ro.tree_path:
            total += len(ro.completion_ids) - ro.demo_len
            continue
        start = 0
        for node, end in zip(ro.tree_path, ro.tree_spans):
            if node not in seen:
                seen.add(node)
                total += end - start
            start = end
    return total


def token_metrics(groups: list[Group]) -> dict[str, float | None]:
    """``rollout/tokens_per_rollout`` (tokens generated / completed rollouts; the step's total is
    ``rollout/generated_tokens``, counted where the groups are sampled), ``rollout/prefix_share`` (share of the leaves' sampled tokens that were shared, not
    generated: 0 for i.i.d.) and ``rollout/entropy`` (``sampled_entropy``)."""
    generated = sum(generated_tokens(g) for g in groups)
    rollouts = sum(len(g) for g in groups)
    sampled = sum(len(ro.completion_ids) - ro.demo_len for g in groups for ro in g)
    return {
        "rollout/tokens_per_rollout": generated / max(rollouts, 1),
        "rollout/prefix_share": 1.0 - generated / sampled if sampled else 0.0,
        "rollout/entropy": sampled_entropy(groups),
    }


def sampled_entropy(groups: list[Group]) -> float | None:
    """The sampling policy's per-token entropy, estimated from its own samples: the mean of
    -log pi(y_t) over every sampled completion token (``Rollout.logprobs`` after ``demo_len``:
    tokens copied from a demonstration were not sampled). None when no token was sampled.

    For y_t ~ pi(. | context), E[-log pi(y_t)] = H(pi(. | context)) (the entropy's definition as
    an expectation, docs/objectives.md "Sampling entropy"), so the mean is an unbiased estimate
    of the token-weighted mean entropy of the distributions the tokens were drawn from. It needs
    only the logprobs every backend returns, and it measures the whole sampled batch, before any
    row is left out of the update (``losses/entropy`` is the trained rows'). With ``rl.top_p`` < 1
    the tokens come from the truncated distribution while the logprobs are the full tempered
    policy's, so it is then the cross-entropy of the two (>= the truncated distribution's
    entropy). A tree's shared tokens count once per leaf that holds them."""
    total, count = 0.0, 0
    for g in groups:
        for ro in g:
            sampled = ro.logprobs[ro.demo_len:]
            total -= sum(sampled)
            count += len(sampled)
    return total / count if count else None


def tree_tensors(groups: list[Group], width: int, device: torch.device | str = "cpu"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The tree structure as tensors for ``graft.algos.advantages.tree_advantages``.

    Returns ``ancestors`` (P, G, D) long: the node id at each depth of each leaf's path, -1 past
    its end; and ``token_node`` (P * G, width) long: for each completion token, the index on its
    leaf's path of the node that generated it (0 on padding). A rollout without ``tree_path``
    (i.i.d., an injected demonstration) is a one-node chain of its own."""
    fresh = 1 + max((n for g in groups for ro in g for n in ro.tree_path), default=-1)
    paths, spans = [], []
    for g in groups:
        for ro in g:
            if ro.tree_path:
                paths.append(ro.tree_path)
                spans.append(ro.tree_spans)
            else:
                paths.append((fresh,))
                spans.append((len(ro.completion_ids),))
                fresh += 1
    P, G = len(groups), len(groups[0]) if groups else 0
    D = max((len(p) for p in paths), default=1)
    ancestors = torch.full((P * G, D), -1, dtype=torch.long, device="cpu")  # (B, D), filled here then moved
    token_node = torch.zeros((P * G, width), dtype=torch.long, device="cpu")  # (B, T)
    for i, (path, ends) in enumerate(zip(paths, spans)):
        ancestors[i, : len(path)] = torch.tensor(path, dtype=torch.long, device="cpu")
        start = 0
        for j, end in enumerate(ends):
            token_node[i, start : min(end, width)] = j
            start = end
    return ancestors.view(P, G, D).to(device), token_node.to(device)


def check_tree_config(cfg) -> list[str]:
    """Problems of a config's tree settings (``rollout.strategy: tree``), each naming its key."""
    ro, problems = cfg.rollout, []
    G = cfg.rl.num_generations
    if ro.branch ** ro.max_depth < G:
        problems.append(f"config key 'rollout.branch': branch**max_depth = {ro.branch}**{ro.max_depth} = "
                        f"{ro.branch ** ro.max_depth} leaves cannot reach rl.num_generations ({G}); raise "
                        "rollout.branch or rollout.max_depth")
    if (ro.max_depth - 1) * ro.segment_len >= cfg.rl.max_new_tokens:
        problems.append(f"config key 'rollout.max_depth': the last branch point, (max_depth - 1) * segment_len = "
                        f"{(ro.max_depth - 1) * ro.segment_len} tokens, must come before rl.max_new_tokens "
                        f"({cfg.rl.max_new_tokens}); lower rollout.max_depth or rollout.segment_len")
    return problems
