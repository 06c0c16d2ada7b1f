"""The performance suite at its tiniest: every measurement runs and the two losses agree.

No timing assertions: only that each part produces finite, positive numbers of the right kind.
"""
import json
import math

import pytest
import torch

from benchmarks import throughput as tp
from hybridssl.model.losses import dirichlet_multinomial_nll
from hybridssl.schema import load_schema

CPU = torch.device("cpu")
TINY = dict(config="demo", arch="test_resnet", image_size=16, batch=4, precision="32")


@pytest.fixture(scope="module")
def cfg():
    return tp.pretrain_config(**TINY)


def test_looped_loss_is_the_vectorised_closed_form():
    schema = load_schema("gz_evo_v0.1")
    counts = tp.realistic_counts(schema, 12, seed=3).double()
    counts[5] = 0  # an unlabelled galaxy
    conc = (1 + 100 * torch.rand(12, schema.n_answers, dtype=torch.float64)).requires_grad_(True)
    loop = tp.looped_dirichlet_nll(conc, counts, schema)
    vec = dirichlet_multinomial_nll(conc, counts, schema)
    torch.testing.assert_close(loop, vec, rtol=1e-10, atol=1e-9)
    assert torch.all(loop[5] == 0)
    g_loop, = torch.autograd.grad(loop.sum(), conc)
    g_vec, = torch.autograd.grad(vec.sum(), conc)
    torch.testing.assert_close(g_loop, g_vec, rtol=1e-10, atol=1e-12)


def test_realistic_counts_follow_one_campaign_tree():
    schema = load_schema("gz_evo_v0.1")
    counts = tp.realistic_counts(schema, 20, seed=1)
    campaign_of_col = torch.as_tensor(schema.campaign_index)[torch.as_tensor(schema.question_index)]
    for row in counts:
        assert len(set(campaign_of_col[row > 0].tolist())) == 1  # one campaign per galaxy
        assert torch.equal(row, row.round()) and row.sum() > 0
    for q in schema.questions:  # a child is asked of exactly its parent answer's voters
        if q.parent is not None:
            torch.testing.assert_close(counts[:, q.start:q.end].sum(1), counts[:, schema.column_index[q.parent]])


def test_bench_loss_reports_agreement_and_ratio():
    r = tp.bench_loss(CPU, repeats=1, batch=16)
    assert r["agree"] and r["max_abs_diff_loss"] < 1e-2
    assert r["loss_ratio"] > 0 and r["n_answers"] == 206 and r["n_questions"] == 65


def test_interleaved_calls_each_side_equally():
    calls = {"a": 0, "b": 0}

    def bump(k):
        calls[k] += 1
    t = tp.interleaved({"a": lambda: bump("a"), "b": lambda: bump("b")}, repeats=3, device=CPU, warmup=1)
    assert calls == {"a": 4, "b": 4} and set(t) == {"a", "b"} and all(v >= 0 for v in t.values())


def test_synthetic_batch_has_the_stream_contract(cfg):
    b = tp.synthetic_batch(cfg, load_schema(cfg.schema))
    assert b["image"].dtype == torch.uint8 and b["image"].shape == (4, 3, 16, 16)
    assert b["votes"].shape == (4, 206) and b["has_votes"].tolist() == [True, True, False, False]
    assert torch.all(b["votes"][~b["has_votes"]] == 0) and torch.all(b["votes"][b["has_votes"]].sum(1) > 0)


def test_bench_step_runs_both_sides_and_counts_flops(cfg):
    r = tp.bench_step(cfg, CPU, rounds=2, steps=1)
    assert r["arch"] == "test_resnet" and r["precision"] == "32-true"
    for k in ("hybrid_samples_per_s", "byol_samples_per_s", "step_ratio", "hybrid_step_flops"):
        assert math.isfinite(r[k]) and r[k] > 0, k


def test_tv2_baseline_makes_views_like_kornia(cfg):
    r = tp.bench_aug(cfg, CPU, repeats=1, workers=0)  # asserts equal view shapes inside
    assert r["aug_ratio"] > 0 and r["kornia_samples_per_s"] > 0
    views = tp.TV2TwoViews(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), cfg.augment)[1]
    assert all(v.dtype == torch.float32 and v.shape == (3, 16, 16) for v in views)


def test_bench_loader_uses_the_loader_benchmark(cfg):
    r = tp.bench_loader(cfg, n=32, workers=0)
    assert r["n"] == 32 and r["loader_ratio"] > 0 and r["shard_samples_per_s"] > 0


def test_cli_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert tp.main(["--quick", "--only", "loss,step", "--arch", "test_resnet", "--image-size", "16", "--threads", "1",
                    "--batch", "4", "--precision", "32", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["ratios"]) == {"loss_ratio", "step_ratio", "mfu"}
    assert rec["goals"]["loss_ratio"]["goal"] == 10.0 and "met" in rec["goals"]["step_ratio"]
    assert rec["device"] == f"cpu-{__import__('os').cpu_count()}core" and len(rec["machine"]["loadavg"]) == 3
    assert rec["results"]["peak_matmul_flop_per_s"] > 0 and rec["machine"]["torch_threads"] == 1
    printed = capsys.readouterr().out
    assert "step_ratio" in printed and "loss_ratio" in printed and str(out) in printed


def test_cli_rejects_unknown_part(capsys):
    with pytest.raises(SystemExit):
        tp.main(["--only", "loss,nope"])
    assert "nope" in capsys.readouterr().err
