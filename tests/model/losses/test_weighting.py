"""How the BYOL and vote losses combine, checked against the hybrid paper's formula written out
independently: total = C + w * |C| / L_sup * L_sup, C the mean of the two negative cosines."""
import pytest
import torch
import torch.nn.functional as F

from hybridssl.model.losses import byol_loss, combine_losses


def _views(seed):
    g = torch.Generator().manual_seed(seed)
    p1, p2, z1, z2 = (torch.randn(6, 8, generator=g, requires_grad=True) for _ in range(4))
    return p1, p2, z1, z2


def _paper_total(p1, p2, z1, z2, sup, w, weighting):
    """The paper's objective from its definitions, sharing no code with hybridssl.model.losses."""
    c_term = -0.5 * (F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean())
    if weighting == "fixed":
        return c_term + w * sup
    return c_term + w * (c_term.detach().abs() / sup.detach()) * sup


@pytest.mark.parametrize("weighting", ["magnitude_matched", "fixed"])
@pytest.mark.parametrize("w", [0.25, 1.0, 5.0])
def test_weight_means_the_papers_weight(weighting, w):
    """Every gradient of our objective is the paper's times the same factor (4), so w has the
    paper's meaning: the relative pull of votes and views is the paper's for the same w."""
    p1, p2, z1, z2 = _views(int(w * 4))
    head = torch.tensor(3.0, requires_grad=True)
    ours = combine_losses(byol_loss(p1, p2, z1, z2), head * 7.0, weighting, w)  # a vote loss with a parameter
    paper = _paper_total(p1, p2, z1, z2, head * 7.0, w, weighting)
    g_ours = torch.autograd.grad(ours, [p1, p2, head])
    g_paper = torch.autograd.grad(paper, [p1, p2, head])
    for a, b in zip(g_ours, g_paper):
        torch.testing.assert_close(a, 4.0 * b)


def test_a_weight_four_times_larger_is_not_the_paper():
    """Guards the scale itself: the old convention (vote coefficient w, not 4w) fails the ratio."""
    p1, p2, z1, z2 = _views(0)
    head = torch.tensor(2.0, requires_grad=True)
    ours = combine_losses(byol_loss(p1, p2, z1, z2), head * 5.0, "magnitude_matched", 1.0)
    paper = _paper_total(p1, p2, z1, z2, head * 5.0, 1.0, "magnitude_matched")
    d_ours_head, d_ours_p = torch.autograd.grad(ours, [head, p1])
    d_paper_head, d_paper_p = torch.autograd.grad(paper, [head, p1])
    assert d_ours_head / d_paper_head == pytest.approx(4.0)
    assert (d_ours_p / d_paper_p)[d_paper_p.abs() > 1e-6].mean().item() == pytest.approx(4.0)


@pytest.mark.parametrize("byol_value, c", [(2.0, 0.5), (0.4, 0.9), (6.0, 0.5)])  # 6: c = -0.5, |c| = 0.5
def test_magnitude_matched_coefficient_is_detached(byol_value, c):
    byol = torch.tensor(byol_value, requires_grad=True)
    sup = torch.tensor(50.0, requires_grad=True)
    total = combine_losses(byol, sup, "magnitude_matched", 0.5)
    d_sup, d_byol = torch.autograd.grad(total, [sup, byol])
    assert d_sup.item() == pytest.approx(4 * 0.5 * c / 50.0)
    assert d_byol.item() == pytest.approx(1.0)  # the coefficient passes no gradient to byol
    assert total.item() == pytest.approx(byol_value + 4 * 0.5 * c)


def test_fixed_is_byol_plus_scaled_weighted_sup():
    byol = torch.tensor(2.0, requires_grad=True)
    sup = torch.tensor(50.0, requires_grad=True)
    total = combine_losses(byol, sup, "fixed", 0.5)
    assert total.item() == pytest.approx(2.0 + 4 * 0.5 * 50.0)
    assert torch.autograd.grad(total, sup)[0].item() == pytest.approx(2.0)


def test_one_term_alone_and_zero_sup():
    byol, zero = torch.tensor(3.0), torch.tensor(0.0)
    assert combine_losses(byol, None, "fixed", 1.0).item() == 3.0
    assert combine_losses(None, zero + 4, "magnitude_matched", 1.0).item() == 4.0
    assert combine_losses(byol, zero, "magnitude_matched", 1.0).item() == 3.0  # no 0/0
    with pytest.raises(ValueError, match="weighting"):
        combine_losses(byol, zero + 1, "nope", 1.0)
    with pytest.raises(ValueError, match="at least one"):
        combine_losses(None, None, "fixed", 1.0)
