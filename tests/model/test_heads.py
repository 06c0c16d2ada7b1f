"""The Dirichlet head's output range and precision, and the expected vote fractions."""
import pytest
import torch

from hybridssl.model.heads import DirichletHead, dirichlet_mean
from hybridssl.model.losses import dirichlet_multinomial_loss
from hybridssl.schema import Schema, load_schema


def test_concentrations_lie_between_1_and_101():
    torch.manual_seed(0)
    head = DirichletHead(in_features=32, n_answers=206, dropout=0.2).eval()
    conc = head(torch.randn(8, 32))
    assert conc.shape == (8, 206) and conc.dtype == torch.float32
    assert torch.all(conc > 1) and torch.all(conc < 101)
    # large logits approach the bounds without leaving them
    with torch.no_grad():
        head.linear.weight.fill_(0)
        head.linear.bias.copy_(torch.linspace(-50, 50, 206))
    extreme = head(torch.zeros(1, 32))
    assert extreme.min().item() == pytest.approx(1.0) and extreme.max().item() == pytest.approx(101.0)
    assert torch.all(extreme >= 1) and torch.all(extreme <= 101)


def test_dropout_only_in_training_mode():
    torch.manual_seed(1)
    head = DirichletHead(16, 10, dropout=0.5)
    x = torch.randn(4, 16)
    head.eval()
    assert torch.equal(head(x), head(x))
    head.train()
    assert not torch.equal(head(x), head(x))


def test_rejects_bad_dropout():
    with pytest.raises(ValueError, match="dropout"):
        DirichletHead(16, 10, dropout=1.0)


def test_bf16_autocast_gives_float32_concentrations_and_trains():
    schema = load_schema("gz_evo_v0.1")
    torch.manual_seed(2)
    head = DirichletHead(16, schema.n_answers, dropout=0.0)
    counts = torch.zeros(4, schema.n_answers)
    counts[:, :3] = torch.tensor([20.0, 15.0, 5.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conc = head(torch.randn(4, 16))
        loss = dirichlet_multinomial_loss(conc, counts, schema)
    assert conc.dtype == torch.float32 and loss.dtype == torch.float32
    loss.backward()
    grad = head.linear.weight.grad
    assert torch.isfinite(grad).all()
    assert grad[:3].abs().sum() > 0 and torch.all(grad[3:] == 0)  # only the answered question learns


def test_dirichlet_mean_is_fraction_within_each_question():
    schema = Schema("tiny", {"c": [{"name": "shape-c", "answers": ["round", "cigar", "edge"], "parent": None},
                                   {"name": "bar-c", "answers": ["yes", "no"], "parent": "shape-c_edge"}]})
    conc = torch.tensor([[1.0, 2.0, 7.0, 3.0, 1.0],
                         [5.0, 5.0, 5.0, 50.0, 50.0]])
    mean = dirichlet_mean(conc, schema)
    expected = torch.tensor([[0.1, 0.2, 0.7, 0.75, 0.25],
                             [1 / 3, 1 / 3, 1 / 3, 0.5, 0.5]])
    torch.testing.assert_close(mean, expected)


def test_dirichlet_mean_sums_to_one_per_question_on_gz_evo():
    schema = load_schema("gz_evo_v0.1")
    conc = DirichletHead(8, schema.n_answers, dropout=0.0)(torch.randn(3, 8))
    mean = dirichlet_mean(conc, schema)
    sums = torch.stack([mean[:, q.start:q.end].sum(1) for q in schema.questions], 1)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    with pytest.raises(ValueError, match="206"):
        dirichlet_mean(conc[:, :10], schema)
