"""ScaleRL sigmoid: the curve by hand, recovery of known parameters from noisy synthetic data."""

import numpy as np
import pytest

from graft.eval.scaling import bootstrap_scalerl, fit_scalerl, predict_from_prefix, scalerl_curve

TRUE = {"A": 0.8, "B": 1.5, "C_mid": 2000.0, "R0": 0.2}


def test_curve_by_hand():
    # at C = C_mid half the gain is reached: R0 + (A - R0) / 2
    assert scalerl_curve(2000.0, **TRUE) == pytest.approx(0.5, abs=1e-12)
    # C = C_mid / 4 with B = 1.5: (1/4)^-1.5... (C_mid / C)^B = 4^1.5 = 8 -> 0.2 + 0.6 / 9
    assert scalerl_curve(500.0, **TRUE) == pytest.approx(0.2 + 0.6 / 9, abs=1e-12)
    assert scalerl_curve(1e12, **TRUE) == pytest.approx(0.8, abs=1e-6)  # the asymptote


def synthetic(seed, noise=0.02, points=300):
    rng = np.random.default_rng(seed)
    C = np.geomspace(50, 50_000, points)
    return C, scalerl_curve(C, **TRUE) + rng.normal(0, noise, size=points), rng


def test_fit_recovers_known_parameters_with_r0_fixed():
    C, R, rng = synthetic(0)
    fit = bootstrap_scalerl(C, R, r0=0.2, rng=rng, reps=100)
    # tolerances ~4-5 standard errors: over 50 noise seeds the fits spread by sd 0.003 (A), 0.022 (B),
    # 26 (C_mid)
    assert fit["A"] == pytest.approx(0.8, abs=0.015)
    assert fit["B"] == pytest.approx(1.5, abs=0.1)
    assert fit["C_mid"] == pytest.approx(2000.0, rel=0.06)
    for name in ("A", "B", "C_mid"):
        lo, hi = fit[f"{name}_ci"]
        assert lo <= TRUE[name] <= hi, (name, lo, hi)
    assert fit["rmse"] == pytest.approx(0.02, abs=0.003)  # the noise level


def test_fit_recovers_r0_when_it_is_free():
    C, R, _ = synthetic(1)
    fit = fit_scalerl(C, R, r0=None)
    assert fit["R0"] == pytest.approx(0.2, abs=0.03)
    assert fit["A"] == pytest.approx(0.8, abs=0.02)


def test_prefix_fit_predicts_the_asymptote():
    # the points with the smallest 75% of compute (C up to ~8,900, 4.4 x C_mid) predict A with sd 0.011
    # over 100 noise seeds; at 60% (1.6 x C_mid) sd 0.05, at 50% (0.8 x C_mid) sd 0.14: the asymptote is
    # only predictable once a run is well past its midpoint
    C, R, _ = synthetic(2)
    early = predict_from_prefix(C, R, r0=0.2, fraction=0.75)
    assert early["points"] == 225
    assert early["A"] == pytest.approx(0.8, abs=0.04)


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="at least"):
        fit_scalerl([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], r0=0.0)
