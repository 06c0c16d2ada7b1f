"""How the BYOL and vote losses combine: the vote term's gradient coefficient is pinned."""
import pytest
import torch

from hybridssl.losses import combine_losses


@pytest.mark.parametrize("byol_value, c", [(2.0, 0.5), (0.4, 0.9), (6.0, 0.5)])  # 6: c = -0.5, |c| = 0.5
def test_magnitude_matched_gives_sup_the_papers_coefficient(byol_value, c):
    """The paper adds weight * |C| / L_sup * L_sup with C = -c, the negative mean cosine."""
    byol = torch.tensor(byol_value, requires_grad=True)
    sup = torch.tensor(50.0, requires_grad=True)
    total = combine_losses(byol, sup, "magnitude_matched", 0.5)
    d_sup, d_byol = torch.autograd.grad(total, [sup, byol])
    assert d_sup.item() == pytest.approx(0.5 * c / 50.0)  # weight * c / sup, coefficient detached
    assert d_byol.item() == pytest.approx(1.0)  # the coefficient passes no gradient to byol
    assert total.item() == pytest.approx(byol_value + 0.5 * c)  # vote term at |C| x weight


def test_fixed_is_byol_plus_weighted_sup():
    byol = torch.tensor(2.0, requires_grad=True)
    sup = torch.tensor(50.0, requires_grad=True)
    total = combine_losses(byol, sup, "fixed", 0.5)
    assert total.item() == pytest.approx(27.0)
    assert torch.autograd.grad(total, sup)[0].item() == pytest.approx(0.5)


def test_one_term_alone_and_zero_sup():
    byol, zero = torch.tensor(3.0), torch.tensor(0.0)
    assert combine_losses(byol, None, "fixed", 1.0).item() == 3.0
    assert combine_losses(None, zero + 4, "magnitude_matched", 1.0).item() == 4.0
    assert combine_losses(byol, zero, "magnitude_matched", 1.0).item() == 3.0  # no 0/0
    with pytest.raises(ValueError, match="weighting"):
        combine_losses(byol, zero + 1, "nope", 1.0)
    with pytest.raises(ValueError, match="at least one"):
        combine_losses(None, None, "fixed", 1.0)
