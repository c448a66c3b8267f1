"""TreePO's tree advantages against hand-computed numbers, and their reduction to GRPO on a flat tree."""

import math

import pytest
import torch

from graft.algos import ADVANTAGES
from graft.algos.advantages import (
    grpo_advantages,
    tree_advantages,
    tree_segment_advantages,
    tree_subgroup_advantages,
)

# one prompt, four leaves: the root splits into nodes 0 (leaves 0, 1) and 1 (leaves 2, 3),
# each of which splits into one leaf node per leaf (2, 3, 4, 5)
ANCESTORS = torch.tensor([[[0, 2], [0, 3], [1, 4], [1, 5]]])  # (1, 4, 2)
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # (1, 4)
EPS = 1e-6


def test_subgroup_advantages_by_hand():
    adv, valid = tree_subgroup_advantages(REWARDS, ANCESTORS)
    # root: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    root = [0.75 / (0.5 + EPS), -0.25 / (0.5 + EPS), -0.25 / (0.5 + EPS), -0.25 / (0.5 + EPS)]
    # node 0: rewards (1, 0), mean 0.5, std sqrt(0.5); node 1: (0, 0) -> exactly 0 but still valid
    s = math.sqrt(0.5)
    node = [0.5 / (s + EPS), -0.5 / (s + EPS), 0.0, 0.0]
    assert torch.allclose(adv[0, :, 0], torch.tensor(root), atol=1e-6)
    assert torch.allclose(adv[0, :, 1], torch.tensor(node), atol=1e-6)
    assert adv[0, :, 2].abs().sum() == 0  # leaf nodes: sub-groups of one
    assert valid[0].tolist() == [[True, True, False]] * 4


def test_leaf_and_segment_advantages_by_hand():
    mask = torch.tensor([[1, 1, 1, 0]] * 4, dtype=torch.float32)  # (4, 3): tokens 0-1 node 0/1, token 2 the leaf
    token_node = torch.tensor([[0, 0, 1, 1]] * 4)
    s = math.sqrt(0.5)
    leaf = [(1.5 + 0.5 / s) / 2, (-0.5 - 0.5 / s) / 2, -0.25, -0.25]  # mean of root and node advantages
    got = tree_advantages(REWARDS, ANCESTORS, token_node, mask)
    for i, value in enumerate(leaf):
        assert torch.allclose(got[i], torch.tensor([value] * 3 + [0.0]), atol=1e-5)
    seg = tree_segment_advantages(REWARDS, ANCESTORS, token_node, mask)
    root = [1.5, -0.5, -0.5, -0.5]  # the shared first node: only the root sub-group differs in it
    for i in range(4):
        assert torch.allclose(seg[i], torch.tensor([root[i], root[i], leaf[i], 0.0]), atol=1e-5)


@pytest.mark.parametrize("name", ["tree", "tree_segment"])
def test_flat_tree_is_grpo(name):
    gen = torch.Generator().manual_seed(0)
    P, G, T = 3, 6, 5
    rewards = torch.randint(0, 3, (P, G), generator=gen).float()
    rewards[2] = 1.0  # a group with no signal: exactly 0
    ancestors = torch.full((P, G, 2), -1)  # every leaf a one-node chain (i.i.d.), padded to depth 2
    ancestors[..., 0] = torch.arange(G).expand(P, G)
    mask = torch.ones(P * G, T)
    token_node = torch.zeros(P * G, T, dtype=torch.long)
    got = ADVANTAGES[name].fn(rewards, ancestors, token_node, mask)  # (B, T)
    want = grpo_advantages(rewards).reshape(-1, 1).expand(-1, T)
    assert torch.allclose(got, want, atol=1e-6)
    assert got[2 * G :].abs().sum() == 0
    assert ADVANTAGES[name].level == "tree"


def test_inputs_are_not_modified_and_masked_tokens_are_zero():
    rewards, ancestors = REWARDS.clone(), ANCESTORS.clone()
    mask = torch.zeros(4, 3)
    out = tree_segment_advantages(rewards, ancestors, torch.zeros(4, 3, dtype=torch.long), mask)
    assert out.abs().sum() == 0
    assert torch.equal(rewards, REWARDS) and torch.equal(ancestors, ANCESTORS)
