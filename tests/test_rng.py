"""The counter-based sampling generator (``graft.rollout.rng``, docs/sampling_rng.md): SplitMix64
(Steele, Lea and Flood 2014) checked against its published outputs and a pure-Python reference,
and a sanity check of the uniforms' distribution."""

import pytest
import torch
from scipy import stats

from graft.rollout import rng

MASK = (1 << 64) - 1


def test_draw_is_splitmix64_from_seed_zero():
    # the first outputs of the reference SplitMix64 (``x += 0x9E3779B97F4A7C15`` then the
    # finalizer) seeded with 0, as the published C implementation prints them
    assert [rng.draw(0, t) for t in range(4)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]


def test_mix64_by_hand():
    assert rng.mix64(0) == 0  # every step of the finalizer keeps 0
    # z = 1: z ^ (z >>> 30) = 1, * MIX1, then the second round and the final xor-shift
    z = rng.MIX1
    z = ((z ^ (z >> 27)) * rng.MIX2) & MASK
    assert rng.mix64(1) == z ^ (z >> 31)
    assert rng.mix64(1 << 64) == 0  # mod 2**64


def test_mix_folds_draw_over_its_arguments():
    assert rng.mix() == 0
    assert rng.mix(7) == rng.mix64(7 + rng.GAMMA)
    assert rng.mix(7, 3) == rng.draw(rng.mix(7) ^ 3, 0)
    assert rng.mix(-1) == rng.mix(MASK)  # integers are taken mod 2**64
    assert rng.mix(1, 2) != rng.mix(2, 1)
    assert rng.row_keys([5, 9], [2, 1]) == [rng.mix(5, 0), rng.mix(5, 1), rng.mix(9, 0)]


def _reference_uniform(key: int, position: int) -> float:
    return (rng.draw(key, position) >> 40) / 2**24


def test_uniforms_match_the_python_reference():
    keys = [0, 1, MASK, 1 << 63, (1 << 63) - 1] + [rng.mix(3, i) for i in range(59)]
    positions = [0, 1, 2, 1000, 10**12] + list(range(59))
    got = rng.uniforms(rng.key_tensor(keys), torch.tensor(positions, device="cpu"))
    assert got.dtype == torch.float32
    assert got.tolist() == [_reference_uniform(k, t) for k, t in zip(keys, positions)]
    assert got[0].item() == 0xE220A8 / 2**24  # the top 24 bits of draw(0, 0), exact in float32


def test_table_is_each_rows_uniforms_at_its_positions():
    keys = [rng.mix(1, i) for i in range(3)]
    got = rng.table(keys, [0, 5, 2], 4)  # (3, 4)
    want = [[_reference_uniform(k, s + t) for t in range(4)] for k, s in zip(keys, [0, 5, 2])]
    assert got.tolist() == want
    # a row's numbers do not depend on the other rows or the table's length
    assert rng.table(keys[1:2], [5], 2).tolist() == [want[1][:2]]


def test_uniforms_look_uniform_and_uncorrelated():
    n = 100_000
    keys = rng.key_tensor([rng.mix(11, i) for i in range(n)])
    u = rng.uniforms(keys, torch.zeros(n, dtype=torch.long, device="cpu")).double()  # (n,)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert stats.kstest(u.numpy(), "uniform").pvalue > 1e-3
    # adjacent positions of one key, adjacent raw keys (unmixed 0, 1, 2 ...) at one position:
    # the correlation's standard error is 1/sqrt(n) ~ 0.003
    one_key = rng.uniforms(rng.key_tensor([12345]), torch.arange(n + 1, device="cpu")).double()
    raw = rng.uniforms(torch.arange(n + 1, device="cpu"), torch.full((n + 1,), 3, device="cpu")).double()
    for series in (one_key, raw):
        assert stats.kstest(series.numpy(), "uniform").pvalue > 1e-3
        r = torch.corrcoef(torch.stack([series[:-1], series[1:]]))[0, 1]
        assert abs(float(r)) < 0.015
    assert abs(float(torch.corrcoef(torch.stack([u, one_key[:n]]))[0, 1])) < 0.015


@pytest.mark.parametrize("bits", [30, 27, 31, 40])
def test_logical_shift_clears_the_sign_bits(bits):
    z = torch.tensor([-1, rng._signed(1 << 63), 5], dtype=torch.long, device="cpu")
    assert rng._shr(z, bits).tolist() == [MASK >> bits, (1 << 63) >> bits, 5 >> bits]
