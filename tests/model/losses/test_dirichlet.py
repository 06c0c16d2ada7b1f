"""The Dirichlet-multinomial loss against scipy, its masking, validation and the one reduction."""
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import dirichlet_multinomial
from torch.overrides import TorchFunctionMode

from hybridssl.model.losses import (
    campaign_losses,
    campaign_voted_galaxies,
    dirichlet_multinomial_loss,
    dirichlet_multinomial_nll,
)
from hybridssl.model.losses import dirichlet
from hybridssl.schema import Schema, load_schema


@pytest.fixture(scope="module")
def schema():
    return load_schema("gz_evo_v0.1")


def random_counts(schema, rng, n_rows):
    """Per question: unasked, a single vote, a large count (>= 500) or a typical ~40 votes."""
    counts = np.zeros((n_rows, schema.n_answers))
    for row in range(n_rows):
        for q in schema.questions:
            kind = rng.integers(4)
            k = len(q.answers)
            if kind == 1:
                counts[row, q.start + rng.integers(k)] = 1
            elif kind == 2:
                counts[row, q.start:q.end] = rng.multinomial(rng.integers(500, 900), np.ones(k) / k)
            elif kind == 3:
                counts[row, q.start:q.end] = rng.multinomial(rng.integers(2, 40), rng.dirichlet(np.ones(k)))
    return counts


def scipy_nll(concentrations, counts, schema):
    """Independent reference: one scipy call per (galaxy, question)."""
    out = np.zeros((counts.shape[0], schema.n_questions))
    for row in range(counts.shape[0]):
        for qi, q in enumerate(schema.questions):
            n = counts[row, q.start:q.end]
            out[row, qi] = -dirichlet_multinomial.logpmf(n, concentrations[row, q.start:q.end], n.sum())
    return out


def test_matches_scipy_in_float64(schema):
    rng = np.random.default_rng(0)
    counts = random_counts(schema, rng, 6)
    conc = rng.uniform(1, 101, counts.shape)
    totals = np.stack([counts[:, q.start:q.end].sum(1) for q in schema.questions], 1)
    assert (totals == 0).any() and (totals == 1).any() and (totals >= 500).any()

    got = dirichlet_multinomial_nll(torch.tensor(conc), torch.tensor(counts), schema)

    assert got.dtype == torch.float64 and got.shape == (6, schema.n_questions)
    np.testing.assert_allclose(got.numpy(), scipy_nll(conc, counts, schema), rtol=0, atol=1e-5)


def test_float32_close_to_scipy(schema):
    rng = np.random.default_rng(1)
    counts = random_counts(schema, rng, 4)
    conc = rng.uniform(1, 101, counts.shape)
    got = dirichlet_multinomial_nll(torch.tensor(conc, dtype=torch.float32),
                                    torch.tensor(counts, dtype=torch.float32), schema)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), scipy_nll(conc, counts, schema), rtol=1e-4, atol=1e-3)


def test_bf16_autocast_computes_in_float32(schema):
    rng = np.random.default_rng(2)
    counts = torch.tensor(random_counts(schema, rng, 3), dtype=torch.float32)
    features = torch.randn(3, 16)
    linear = torch.nn.Linear(16, schema.n_answers)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conc = 1 + 100 * torch.sigmoid(linear(features))
        assert conc.dtype == torch.bfloat16
        got = dirichlet_multinomial_nll(conc, counts, schema)
    assert got.dtype == torch.float32
    want = scipy_nll(conc.double().detach().numpy(), counts.double().numpy(), schema)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-3)


def test_unasked_questions_have_exactly_zero_loss_and_gradient(schema):
    rng = np.random.default_rng(3)
    counts = torch.tensor(random_counts(schema, rng, 5))
    conc = torch.tensor(rng.uniform(1, 101, counts.shape), requires_grad=True)

    nll = dirichlet_multinomial_nll(conc, counts, schema)
    nll.sum().backward()

    qidx = torch.as_tensor(schema.question_index)
    unasked_q = torch.stack([counts[:, q.start:q.end].sum(1) == 0 for q in schema.questions], 1)
    unasked_col = unasked_q[:, qidx]
    assert unasked_q.any() and (~unasked_q).any()
    assert torch.all(nll[unasked_q] == 0)
    assert torch.all(nll[~unasked_q] > 0)
    assert torch.isfinite(conc.grad).all()
    assert torch.all(conc.grad[unasked_col] == 0)
    assert torch.all(conc.grad[~unasked_col].abs().sum() > 0)


@pytest.fixture(params=["compacted", "masked"])
def layout(request, monkeypatch):
    """Both ways of computing: only nonzero entries (CPU) and every entry, masked (accelerators)."""
    monkeypatch.setattr(dirichlet, "_skips_zero_counts", lambda device: request.param == "compacted")
    return request.param


def test_both_layouts_give_the_same_loss_and_gradient(schema, monkeypatch):
    rng = np.random.default_rng(6)
    counts = torch.tensor(random_counts(schema, rng, 4))
    conc = torch.tensor(rng.uniform(1, 101, counts.shape), requires_grad=True)
    results = {}
    for compact in (True, False):
        monkeypatch.setattr(dirichlet, "_skips_zero_counts", lambda device: compact)
        conc.grad = None
        nll = dirichlet_multinomial_nll(conc, counts, schema)
        nll.sum().backward()
        results[compact] = nll.detach(), conc.grad.clone()

    np.testing.assert_allclose(results[False][0].numpy(), scipy_nll(conc.detach().numpy(), counts.numpy(), schema),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(results[True][1], results[False][1], rtol=1e-12, atol=0)
    assert (results[True][1] != 0).any()


def test_each_layout_keeps_unasked_questions_out(schema, layout):
    """inf/NaN predictions, and invalid counts summing to 0 (validate=False), give exact zeros."""
    q0, q1 = schema.questions[:2]
    counts = torch.zeros(2, schema.n_answers)
    counts[0, q0.start] = 3
    counts[0, q1.start:q1.start + 2] = torch.tensor([-1.0, 1.0])  # total 0: not asked
    conc = torch.full((2, schema.n_answers), 5.0)
    conc[:, q1.end:] = float("inf")
    conc[1, :] = float("nan")
    conc.requires_grad_(True)

    nll = dirichlet_multinomial_nll(conc, counts, schema, validate=False)
    nll.sum().backward()

    assert nll[0, 0] > 0 and torch.all(nll[0, 1:] == 0) and torch.all(nll[1] == 0)
    assert torch.all(conc.grad[0, q0.start:q0.end] != 0)
    assert torch.all(conc.grad[0, q0.end:] == 0) and torch.all(conc.grad[1] == 0)


class LgammaElements(TorchFunctionMode):
    """Counts the elements passed to torch.lgamma."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.lgamma:
            self.elements += args[0].numel()
        return func(*args, **(kwargs or {}))


def test_compacted_layout_computes_only_nonzero_counts_and_asked_questions(schema, layout):
    rng = np.random.default_rng(7)
    counts = torch.tensor(random_counts(schema, rng, 3), dtype=torch.float32)
    conc = torch.tensor(rng.uniform(1, 101, counts.shape), dtype=torch.float32)
    asked = torch.stack([counts[:, q.start:q.end].sum(1) > 0 for q in schema.questions], 1)

    with LgammaElements() as lgamma:
        dirichlet_multinomial_nll(conc, counts, schema)

    # three lgamma terms per answer and three per question
    if layout == "compacted":
        assert lgamma.elements == 3 * int((counts != 0).sum()) + 3 * int(asked.sum())
    else:
        assert lgamma.elements == 3 * counts.numel() + 3 * asked.numel()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist only with a GPU")
def test_no_host_sync_on_gpu_without_validation(schema):
    rng = np.random.default_rng(8)
    counts = torch.tensor(random_counts(schema, rng, 8), dtype=torch.float32, device="cuda")
    conc = torch.tensor(rng.uniform(1, 101, counts.shape), dtype=torch.float32, device="cuda", requires_grad=True)
    dirichlet_multinomial_nll(conc, counts, schema, validate=False)  # caches the schema's indices on the GPU
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        dirichlet_multinomial_nll(conc, counts, schema, validate=False).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(conc.grad).all()


def tiny_schema():
    return Schema("tiny", {"c": [{"name": "shape-c", "answers": ["round", "cigar", "edge"], "parent": None},
                                 {"name": "bar-c", "answers": ["yes", "no"], "parent": "shape-c_edge"}]})


def test_pmf_over_all_count_vectors_sums_to_one():
    schema = tiny_schema()
    n_votes = 4
    vectors = [v for v in itertools.product(range(n_votes + 1), repeat=3) if sum(v) == n_votes]
    assert len(vectors) == 15
    counts = torch.zeros(len(vectors), schema.n_answers, dtype=torch.float64)
    counts[:, :3] = torch.tensor(vectors, dtype=torch.float64)
    conc = torch.tensor([[1.5, 7.0, 30.0, 2.0, 3.0]], dtype=torch.float64).expand(len(vectors), -1)

    nll = dirichlet_multinomial_nll(conc, counts, schema)

    assert torch.exp(-nll[:, 0]).sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(nll[:, 1] == 0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 2.5])
def test_bad_counts_name_row_and_column(schema, bad):
    counts = torch.zeros(3, schema.n_answers)
    col = schema.column_index["bar-dr5_weak"]
    counts[2, col] = bad
    conc = torch.full(counts.shape, 2.0)
    with pytest.raises(ValueError, match=r"row 2.*'bar-dr5_weak'"):
        dirichlet_multinomial_nll(conc, counts, schema)


def test_validation_is_optional(schema):
    counts = torch.zeros(1, schema.n_answers)
    counts[0, 0] = 2.5  # fractional: meaningless as votes, but lgamma is defined
    nll = dirichlet_multinomial_nll(torch.full(counts.shape, 2.0), counts, schema, validate=False)
    assert torch.isfinite(nll).all() and nll[0, 0] > 0


def test_bad_concentrations_and_shapes_raise(schema):
    counts = torch.zeros(2, schema.n_answers)
    conc = torch.full(counts.shape, 2.0)
    conc[1, 5] = 0.0
    with pytest.raises(ValueError, match=rf"row 1.*{schema.label_cols[5]!r}"):
        dirichlet_multinomial_nll(conc, counts, schema)
    with pytest.raises(ValueError, match="206"):
        dirichlet_multinomial_nll(torch.ones(2, 10), torch.zeros(2, 10), schema)
    with pytest.raises(ValueError, match="counts have shape"):
        dirichlet_multinomial_nll(torch.full((2, 206), 2.0), torch.zeros(3, 206), schema)


def test_loss_is_sum_over_questions_mean_over_voted_galaxies(schema):
    rng = np.random.default_rng(4)
    voted = torch.tensor(random_counts(schema, rng, 3))
    voted[:, :3] += torch.tensor([1.0, 0, 0])  # every row answers at least one question
    counts = torch.cat([voted[:1], torch.zeros(2, schema.n_answers), voted[1:]])
    conc = torch.tensor(rng.uniform(1, 101, counts.shape))

    loss = dirichlet_multinomial_loss(conc, counts, schema)

    nll = torch.tensor(scipy_nll(conc.numpy(), counts.numpy(), schema))
    assert loss.item() == pytest.approx(nll.sum().item() / 3, rel=1e-10)
    undiluted = dirichlet_multinomial_loss(conc[[0, 3, 4]], voted, schema)
    assert loss.item() == pytest.approx(undiluted.item(), rel=1e-12)


def test_loss_without_any_votes_is_zero_and_differentiable(schema):
    conc = torch.full((4, schema.n_answers), 3.0, requires_grad=True)
    loss = dirichlet_multinomial_loss(conc, torch.zeros(4, schema.n_answers), schema)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert torch.all(conc.grad == 0)


def test_campaign_losses_use_the_same_reduction(schema):
    rng = np.random.default_rng(5)
    full = torch.tensor(random_counts(schema, rng, 3))
    counts = torch.zeros_like(full)
    dr5 = [schema.column_index[c] for c in schema.campaign_columns("dr5")]
    gz2 = [schema.column_index[c] for c in schema.campaign_columns("gz2")]
    counts[:2, dr5] = full[:2, dr5]
    counts[2, gz2] = full[2, gz2]
    counts[:2, dr5[0]] += 1  # rows 0, 1 voted only in dr5; row 2 only in gz2
    counts[2, gz2[0]] += 1
    conc = torch.tensor(rng.uniform(1, 101, counts.shape))
    nll = dirichlet_multinomial_nll(conc, counts, schema)

    per_campaign = campaign_losses(nll, counts, schema)

    is_dr5 = torch.tensor([q.campaign == "dr5" for q in schema.questions])
    is_gz2 = torch.tensor([q.campaign == "gz2" for q in schema.questions])
    expected = torch.zeros(len(schema.campaigns), dtype=torch.float64)
    expected[schema.campaigns.index("dr5")] = nll[:2][:, is_dr5].sum() / 2
    expected[schema.campaigns.index("gz2")] = nll[2, is_gz2].sum()
    torch.testing.assert_close(per_campaign, expected, rtol=1e-12, atol=0)
    weights = campaign_voted_galaxies(counts, schema)
    assert weights.tolist() == [2 if c == "dr5" else 1 if c == "gz2" else 0 for c in schema.campaigns]
    # weighting campaigns by their voted galaxies recovers the training loss (each galaxy here is in one campaign)
    overall = dirichlet_multinomial_loss(conc, counts, schema)
    assert (per_campaign * weights).sum().item() / 3 == pytest.approx(overall.item(), rel=1e-12)
