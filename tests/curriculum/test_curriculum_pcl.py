"""PCL's pure pieces: the predictor, its fit, the selection, the prompt features."""

import math

import torch

from graft.curriculum.pcl import (
    fit_predictor,
    nearest_to_target,
    predict_pass_rate,
    prompt_features,
)
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_predict_pass_rate_hand_computed():
    weights = torch.tensor([1.0, -2.0, 0.5])  # w = (1, -2), b = 0.5
    features = torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 0.25]])
    got = predict_pass_rate(weights, features)
    want = torch.tensor([_sigmoid(-0.5), _sigmoid(0.5), _sigmoid(2.0)])
    assert torch.allclose(got, want, atol=1e-7, rtol=0)


def test_fit_predictor_one_step_hand_computed_and_input_untouched():
    weights = torch.zeros(2)
    features = torch.tensor([[1.0], [-1.0]])
    rates = torch.tensor([1.0, 0.0])
    # V = 0.5 on both; residuals (-0.5, 0.5); grad_w = (1 * -0.5 + -1 * 0.5) / 2 = -0.5; grad_b = 0
    got = fit_predictor(weights, features, rates, lr=1.0, steps=1)
    assert torch.equal(got, torch.tensor([0.5, 0.0]))
    assert torch.equal(weights, torch.zeros(2))
    # a second step from there: V = sigmoid(+-0.5), residuals (s - 1, 1 - s) with s = sigmoid(0.5)
    s = _sigmoid(0.5)
    two = fit_predictor(weights, features, rates, lr=1.0, steps=2)
    assert torch.allclose(two, torch.tensor([0.5 + (1 - s), 0.0]), atol=1e-7, rtol=0)


def test_predictor_learns_a_linear_pass_rate_online():
    """Online on noisy observed pass rates (8 rollouts per prompt, 16 prompts per step, each
    prompt seen once), it generalises to unseen prompts of a synthetic logistic-linear pass rate."""
    g = torch.Generator().manual_seed(0)
    C = 8
    true_w = torch.randn(C, generator=g) * 3.0
    true_b = -0.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, C, generator=g) / C**0.5  # rows of norm about 1, like prompt_features
        return x, torch.sigmoid(x @ true_w + true_b)

    weights = torch.zeros(C + 1)
    for _ in range(150):
        x, p = draw(16)
        observed = torch.binomial(torch.full((16,), 8.0), p, generator=g) / 8  # (16,) a group's pass rate
        weights = fit_predictor(weights, x, observed, lr=1.0, steps=4)
    x, p = draw(500)
    mae = (predict_pass_rate(weights, x) - p).abs().mean()
    baseline = (p - p.mean()).abs().mean()  # the best constant predictor's error, about
    assert mae < 0.2 * baseline, (float(mae), float(baseline))
    assert torch.corrcoef(torch.stack([predict_pass_rate(weights, x), p]))[0, 1] > 0.9


def test_nearest_to_target_picks_nearest_with_ties_by_index():
    predicted = torch.tensor([0.875, 0.375, 0.125, 0.625, 0.5, 0.25])  # distances to 0.5:
    # 0.375, 0.125, 0.375, 0.125, 0, 0.25
    assert nearest_to_target(predicted, 0.5, 1).tolist() == [4]
    assert nearest_to_target(predicted, 0.5, 3).tolist() == [1, 3, 4]
    assert nearest_to_target(predicted, 0.5, 4).tolist() == [1, 3, 4, 5]
    assert nearest_to_target(predicted, 0.5, 5).tolist() == [0, 1, 3, 4, 5]  # tie 0 vs 2: lower index
    assert nearest_to_target(predicted, 0.125, 2).tolist() == [2, 5]


def test_prompt_features_standardised_and_order_equivariant():
    torch.set_num_threads(1)
    config = TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=2)
    policy = TinyPolicy.create(config, seed=0)
    prompts = [policy.tokenizer.encode(p) for p in ("1+2=", "47+85=", "903-12=", "5-5=", "60+7=")]
    policy.module.train()
    feats = prompt_features(policy, prompts)
    assert policy.module.training  # the forward's eval() is undone
    assert feats.shape == (5, 32)
    assert torch.allclose(feats.mean(0), torch.zeros(32), atol=1e-6, rtol=0)
    assert torch.allclose(feats.pow(2).sum(1).mean(), torch.tensor(1.0), atol=1e-3, rtol=0)
    order = [3, 0, 4, 1, 2]
    permuted = prompt_features(policy, [prompts[i] for i in order])
    assert torch.allclose(permuted, feats[order], atol=1e-5, rtol=0)
