"""What the Dirichlet head's concentrations say about vote fractions and vote counts (numpy/scipy only).

Concentrations have shape (K, ..., n_answers): K MC-dropout samples (K = 1: one deterministic
pass). Within a question with total concentration A_q, answer k's vote fraction is
Beta(a_k, A_q - a_k) and its count out of N volunteers is Beta-Binomial(N, a_k, A_q - a_k).
With K samples every predictive is the equal-weight mixture over samples (MC dropout as an
approximate posterior over the head's weights), so K = 1 is just a one-component mixture and
every function below has a single code path.

``question_index`` is the schema's (n_answers,) answer -> question map (or a slice of it); a
question's answers are adjacent columns.
"""
from __future__ import annotations

import numpy as np
from scipy.special import betainc, betaincinv, betaln, entr, gammaln, xlog1py, xlogy


def _starts(question_index) -> np.ndarray:
    """First column of each run of one question's answers."""
    return np.flatnonzero(np.diff(np.asarray(question_index), prepend=-1))


def beta_marginals(concentrations, question_index) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of each answer's Beta marginal: a_k and the rest of its question's total."""
    a = np.asarray(concentrations, dtype=np.float64)
    starts = _starts(question_index)
    totals = np.add.reduceat(a, starts, axis=-1)
    return a, np.repeat(totals, np.diff(np.r_[starts, a.shape[-1]]), axis=-1) - a


def mean_fractions(concentrations, question_index) -> np.ndarray:
    """(..., n_answers) expected vote fractions: Dirichlet means averaged over the MC axis 0."""
    a, b = beta_marginals(concentrations, question_index)
    return (a / (a + b)).mean(0)


def per_question_mean(x, question_index) -> np.ndarray:
    """(..., n_questions) mean over each question's answers of (..., n_answers) values."""
    starts = _starts(question_index)
    return np.add.reduceat(x, starts, axis=-1) / np.diff(np.r_[starts, x.shape[-1]])


def beta_mixture_quantile(a, b, q: float, tol: float = 1e-8, max_iter: int = 60) -> np.ndarray:
    """x with mean_k I_x(a_k, b_k) = q for (K, ...) a, b: the q-quantile of the mixture of Betas.

    The component quantiles bracket the mixture's (at the smallest every component CDF is <= q,
    at the largest >= q), so K = 1 is exact with no iteration. Inside the bracket: Newton steps
    on the mixture CDF (its derivative is the mixture pdf), bisection where a step would leave
    the bracket, iterating only on the entries not yet converged.
    """
    comp = betaincinv(a, b, q)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    lo, hi = comp.min(0).ravel(), comp.max(0).ravel()
    x = (lo + hi) / 2
    todo = np.flatnonzero(hi - lo > tol)
    for _ in range(max_iter):
        if not todo.size:
            break
        ak, bk, xk = a[:, todo], b[:, todo], x[todo]
        cdf = betainc(ak, bk, xk).mean(0)
        lo[todo], hi[todo] = np.where(cdf < q, xk, lo[todo]), np.where(cdf < q, hi[todo], xk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pdf = np.exp(xlogy(ak - 1, xk) + xlog1py(bk - 1, -xk) - betaln(ak, bk)).mean(0)
            newton = xk - (cdf - q) / pdf
        step = np.where((newton > lo[todo]) & (newton < hi[todo]), newton, (lo[todo] + hi[todo]) / 2)
        x[todo] = step
        todo = todo[(np.abs(step - xk) > tol) & (hi[todo] - lo[todo] > tol)]
    return x.reshape(comp.shape[1:])


def fraction_interval(a, b, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of each answer's vote fraction under the Beta mixture."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    return beta_mixture_quantile(a, b, (1 - level) / 2), beta_mixture_quantile(a, b, (1 + level) / 2)


def betabinom_pmf(n, a, b) -> np.ndarray:
    """(K, ..., max(n) + 1) P(k of n votes), k = 0..max(n), under Beta-Binomial(n, a, b); zero for k > n.

    ``n``: integer array broadcasting against a[0] (or a scalar); ``a``, ``b``: (K, ...).
    """
    n = np.asarray(n)[..., None]
    k = np.arange(int(n.max()) + 1)
    rest = np.maximum(n - k, 0)  # keeps gammaln off the poles where k > n; masked below
    log = (gammaln(n + 1) - gammaln(k + 1) - gammaln(rest + 1)
           + betaln(k + a[..., None], rest + b[..., None]) - betaln(a, b)[..., None])
    return np.where(k <= n, np.exp(log), 0.0)


def count_interval_coverage(a, b, n, observed, levels, max_cells: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Walmsley et al. (2020) coverage of predicted vote counts, one entry per (galaxy, answer).

    ``a``, ``b``: (K, M); ``n``, ``observed``: (M,) volunteers asked and votes for the answer;
    ``levels``: (L,). For each level the interval [lo, hi] is the smallest central one of the
    (mixture) Beta-Binomial predictive: lo leaves at most (1 - level)/2 below it, hi at most that
    above it, so it holds at least ``level``. Returns (inside (L, M) bool: observed in [lo, hi];
    mass (L, M): the interval's predicted probability, the coverage a calibrated model expects).
    Entries are processed in chunks of at most ``max_cells`` pmf values.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n, observed = np.asarray(n, dtype=np.int64), np.asarray(observed, dtype=np.int64)
    tail = ((1 - np.asarray(levels, dtype=np.float64)) / 2)[:, None, None]  # (L, 1, 1)
    inside = np.zeros((len(tail), len(n)), dtype=bool)
    mass = np.zeros((len(tail), len(n)))
    step = max(1, max_cells // (a.shape[0] * (int(n.max(initial=0)) + 1)))
    for s in range(0, len(n), step):
        sl = slice(s, s + step)
        cdf = np.cumsum(betabinom_pmf(n[sl], a[:, sl], b[:, sl]).mean(0), -1)  # (m, kmax + 1)
        lo = (cdf <= tail).sum(-1)                              # first k with CDF(k) > tail
        hi = np.minimum((cdf < 1 - tail).sum(-1), n[sl])        # first k with CDF(k) >= 1 - tail
        mass[:, sl] = _at(cdf, hi) - np.where(lo > 0, _at(cdf, lo - 1), 0.0)
        inside[:, sl] = (lo <= observed[sl]) & (observed[sl] <= hi)
    return inside, mass


def _at(cdf, k) -> np.ndarray:
    """cdf[m, k[l, m]] for (m, kmax + 1) ``cdf`` and (L, m) ``k`` (clipped at 0)."""
    return cdf[np.arange(cdf.shape[0]), np.maximum(k, 0)]


def bald(a, b, n: int) -> np.ndarray:
    """BALD mutual information (Houlsby et al. 2011) between one answer's count out of ``n``
    volunteers and the MC sample: H[mean_m p_m] - mean_m H[p_m], p_m = Beta-Binomial(n, a_m, b_m).
    ``a``, ``b``: (K, ...) -> (...,), in nats."""
    p = betabinom_pmf(n, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    mi = entr(p.mean(0)).sum(-1) - entr(p).sum(-1).mean(0)
    return np.maximum(mi, 0.0)  # >= 0 by concavity of entropy; clip rounding just below


def question_bald(concentrations, question_index, n: int) -> np.ndarray:
    """(..., n_questions) BALD of each question's votes from (K, ..., n_answers) concentrations.

    The mean over answers of the one-vs-rest Beta-Binomial BALD: exact for two-answer questions
    (both answers give the same value), an approximation of the Dirichlet-Multinomial's for more.
    """
    a, b = beta_marginals(concentrations, question_index)
    return per_question_mean(bald(a, b, n), question_index)
