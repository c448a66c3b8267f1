"""A value model for PPO with GAE: a copy of the policy's network with a scalar head.

ReFT (Luong et al. 2024, arXiv 2401.08967, Sec. 3, "Reinforced Fine-Tuning") builds
its value model by "appending a linear value head on top of the last hidden
states of the policy model", initialised from the SFT model. graft does the
same with a separate copy (no weight sharing with the policy): the critic is
``copy.deepcopy`` of the policy when RL starts plus a zero-initialised
``Linear(hidden, 1)``, so every value is 0 before its first update.

The value of completion token t is read at the position that predicts it
(the state before the token is emitted), the same column the policy's
log-probability of token t comes from.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from graft.models.policy import Policy, position_ids_from_mask

CRITIC_FILE = "critic.pt"


class Critic(nn.Module):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(policy)  # a Policy (not a module): its network is registered below
        self.body = self.trunk.module
        self.body.requires_grad_(True)
        self.head = nn.Linear(policy.hidden_size, 1, device=policy.device)  # float32
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    def values(self, ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
               width: int) -> torch.Tensor:
        """V(s_t) for the ``width`` completion tokens: (B, Tp + Tc) ids -> (B, Tc) float32."""
        hidden = self.trunk.hidden(ids, attention_mask, position_ids_from_mask(attention_mask))  # (B, T, C)
        hidden = hidden[:, prompt_width - 1 : prompt_width - 1 + width]  # (B, Tc, C)
        return self.head(hidden.float()).squeeze(-1)  # (B, Tc)

    def save(self, directory: Path) -> None:
        torch.save(self.state_dict(), Path(directory) / CRITIC_FILE)

    @classmethod
    def load(cls, policy: Policy, directory: Path) -> Critic:
        """Rebuild the critic's structure from ``policy`` and load its saved weights."""
        critic = cls(policy)
        critic.load_state_dict(torch.load(Path(directory) / CRITIC_FILE, weights_only=True))
        return critic
