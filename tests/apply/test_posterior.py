"""The posterior math: Beta-mixture intervals, Beta-Binomial coverage, BALD (numpy/scipy only)."""
import numpy as np
import pytest
from scipy import stats

from hybridssl.apply.posterior import (bald, beta_marginals, beta_mixture_quantile, betabinom_pmf,
                                       count_interval_coverage, fraction_interval, mean_fractions,
                                       per_question_mean, question_bald)

QIDX = np.array([0, 0, 0, 1, 1])  # a three-answer question, then a two-answer one
LEVELS = [0.5, 0.68, 0.8, 0.9, 0.95]


def test_marginals_and_mean_fractions_follow_the_questions():
    rng = np.random.default_rng(0)
    conc = 1 + 100 * rng.random((4, 6, 5))
    a, b = beta_marginals(conc, QIDX)
    np.testing.assert_allclose(b[..., 0], conc[..., 1] + conc[..., 2])
    np.testing.assert_allclose(b[..., 4], conc[..., 3])
    frac = mean_fractions(conc, QIDX)
    assert frac.shape == (6, 5)
    np.testing.assert_allclose(per_question_mean(frac, QIDX) * [3, 2], 1.0)
    np.testing.assert_allclose(frac[:, 3], (conc[..., 3] / conc[..., 3:].sum(-1)).mean(0))


def test_one_sample_interval_is_the_beta_quantile():
    rng = np.random.default_rng(1)
    a, b = 1 + 100 * rng.random((2, 1, 50))
    lo, hi = fraction_interval(a, b, 0.9)
    np.testing.assert_allclose(lo, stats.beta.ppf(0.05, a[0], b[0]), rtol=1e-12)
    np.testing.assert_allclose(hi, stats.beta.ppf(0.95, a[0], b[0]), rtol=1e-12)


def test_mixture_quantile_solves_the_mixture_cdf():
    rng = np.random.default_rng(2)
    a, b = 1 + 100 * rng.random((2, 7, 40))
    for q in (0.05, 0.5, 0.95):
        x = beta_mixture_quantile(a, b, q)
        assert np.all(stats.beta.cdf(x - 1e-6, a, b).mean(0) <= q)
        assert np.all(stats.beta.cdf(x + 1e-6, a, b).mean(0) >= q)
    same = beta_mixture_quantile(np.repeat(a[:1], 3, 0), np.repeat(b[:1], 3, 0), 0.3)
    np.testing.assert_allclose(same, stats.beta.ppf(0.3, a[0], b[0]), rtol=1e-12)
    with pytest.raises(ValueError, match="interval"):
        fraction_interval(a, b, 1.0)


def test_betabinom_pmf_matches_scipy_and_is_zero_past_n():
    rng = np.random.default_rng(3)
    n = np.array([0, 1, 7, 40])
    a, b = 1 + 50 * rng.random((2, 3, 4))
    p = betabinom_pmf(n, a, b)
    assert p.shape == (3, 4, 41)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-10)
    k = np.arange(41)
    for j, nj in enumerate(n):
        np.testing.assert_allclose(p[:, j, :nj + 1], stats.betabinom.pmf(k[:nj + 1], nj, a[:, j, None], b[:, j, None]),
                                   rtol=1e-9, atol=1e-300)
        assert np.all(p[:, j, nj + 1:] == 0)


def synthetic_votes(rng, conc_true, n_volunteers):
    """Counts drawn from the Dirichlet-multinomial with the given (G, 5) concentrations."""
    g = rng.gamma(conc_true)
    votes = np.zeros(conc_true.shape, dtype=np.int64)
    for q, cols in ((0, slice(0, 3)), (1, slice(3, 5))):
        votes[:, cols] = rng.multinomial(n_volunteers[:, q], g[:, cols] / g[:, cols].sum(1, keepdims=True))
    return votes


def coverage(conc_pred, votes, n_volunteers):
    a, b = beta_marginals(conc_pred, QIDX)
    k, g = a.shape[0], a.shape[1]
    inside, mass = count_interval_coverage(a.reshape(k, -1), b.reshape(k, -1), n_volunteers[:, QIDX].ravel(),
                                           votes.ravel(), LEVELS, max_cells=50_000)  # several chunks
    assert inside.shape == mass.shape == (len(LEVELS), g * 5)
    return inside.mean(1), mass.mean(1)


def test_perfectly_calibrated_model_covers_as_expected_and_overconfident_one_does_not():
    rng = np.random.default_rng(4)
    conc = 1 + 30 * rng.random((3000, 5))
    n_volunteers = rng.integers(20, 60, (3000, 2))
    votes = synthetic_votes(rng, conc, n_volunteers)
    observed, expected = coverage(conc[None], votes, n_volunteers)
    np.testing.assert_allclose(observed, expected, atol=0.015)
    # discrete counts (20-60 volunteers) make intervals overshoot their level, most at low levels
    assert np.all(expected >= LEVELS) and np.all(expected - LEVELS < 0.1)
    observed, expected = coverage(10 * conc[None], votes, n_volunteers)  # same means, ten times too sure
    assert np.all(observed < expected - 0.07) and np.all(observed < LEVELS)


def test_mc_mixture_is_calibrated_when_votes_come_from_the_mixture():
    rng = np.random.default_rng(5)
    conc = 1 + 30 * rng.random((4, 3000, 5))  # four MC samples that disagree
    n_volunteers = rng.integers(20, 60, (3000, 2))
    votes = synthetic_votes(rng, conc[rng.integers(0, 4, 3000), np.arange(3000)], n_volunteers)
    observed, expected = coverage(conc, votes, n_volunteers)
    np.testing.assert_allclose(observed, expected, atol=0.015)
    observed_one, expected_one = coverage(conc[:1], votes, n_volunteers)  # one sample ignores the disagreement
    assert np.all(observed_one < expected_one - 0.05)


def test_coverage_interval_is_the_smallest_central_one():
    a, b = np.array([[3.0]]), np.array([[5.0]])
    inside, mass = count_interval_coverage(a, b, [10], [4], [0.5])
    cdf = np.cumsum(stats.betabinom.pmf(np.arange(11), 10, 3, 5))
    lo, hi = np.argmax(cdf > 0.25), np.argmax(cdf >= 0.75)
    assert 0 < lo < 4 < hi < 10  # an interior interval, so the check below means something
    assert mass[0, 0] == pytest.approx(cdf[hi] - cdf[lo - 1]) and mass[0, 0] >= 0.5
    assert inside[0, 0]
    inside, _ = count_interval_coverage(a, b, [10], [hi + 1], [0.5])
    assert not inside[0, 0]


def brute_force_bald(a, b, n):
    p = np.array([stats.betabinom.pmf(np.arange(n + 1), n, am, bm) for am, bm in zip(a, b)])
    return stats.entropy(p.mean(0)) - np.mean([stats.entropy(pm) for pm in p])


def test_bald_matches_its_definition_and_is_non_negative():
    rng = np.random.default_rng(6)
    a, b = 1 + 100 * rng.random((2, 5, 30))
    mi = bald(a, b, 40)
    assert mi.shape == (30,) and np.all(mi >= 0) and np.all(mi <= np.log(5) + 1e-12)
    for j in range(3):
        assert mi[j] == pytest.approx(brute_force_bald(a[:, j], b[:, j], 40), rel=1e-8)


def test_bald_is_zero_when_samples_agree_and_high_when_they_disagree():
    agree = np.repeat([[[20.0, 5.0, 8.0, 30.0, 2.0]]], 6, 0)  # (K=6, B=1, 5)
    disagree = agree.copy()
    disagree[::2, 0, [0, 1, 3, 4]] = [5.0, 20.0, 2.0, 30.0]  # every other sample swaps its answers
    mi = question_bald(np.concatenate([agree, disagree], 1), QIDX, 40)
    assert mi.shape == (2, 2)
    assert np.all(mi[0] < 1e-10) and np.all(mi[1] > 0.1)


def test_two_answer_question_bald_is_exact_and_many_answers_average_one_vs_rest():
    rng = np.random.default_rng(7)
    conc = 1 + 100 * rng.random((5, 3, 5))
    a, b = beta_marginals(conc, QIDX)
    per_answer = bald(a, b, 30)
    np.testing.assert_allclose(per_answer[:, 3], per_answer[:, 4], rtol=1e-9)  # mirror images
    mi = question_bald(conc, QIDX, 30)
    for g in range(3):
        assert mi[g, 1] == pytest.approx(brute_force_bald(conc[:, g, 3], conc[:, g, 4], 30), rel=1e-8)
    np.testing.assert_allclose(mi[:, 0], per_answer[:, :3].mean(1))
