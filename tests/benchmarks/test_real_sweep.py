"""benchmarks/real_sweep.py tiny on CPU: two variants, a few steps, a handful of real galaxies."""
import json

import pytest

from benchmarks import real_sweep
from benchmarks.real_sweep import main

TINY = ("trainer.max_steps=3 trainer.checkpoint_every_n_steps=2 optim.warmup_steps=1 data.batch_size=8 "
        "data.num_workers=0 augment.crop_size=32 augment.resize_size=32 augment.blur_kernel=3 "
        "trainer.progress_bar=false")


@pytest.mark.slow
def test_sweep_scores_two_variants_on_validation_galaxies_only(tmp_path, capsys, monkeypatch):
    seen = []  # rows each probe fits + validates on: never a test-split galaxy
    probe = real_sweep.linear_probe
    monkeypatch.setattr(real_sweep, "linear_probe", lambda x, y, x_val, *a: (seen.append(len(x) + len(x_val)),
                                                                              probe(x, y, x_val, *a))[1])
    out = tmp_path / "sweep"
    rc = main([str(out), "--variant", "hybrid", f"mode=hybrid {TINY}", "--variant", "byol", f"mode=byol {TINY}",
               "--parallel", "2", "--accelerator", "cpu", "--device", "cpu", "--splits", "2",
               "--budgets", "4", "--limit", "24", "--image-size", "32", "--workers", "1"])
    assert rc == 0
    result = json.loads((out / "sweep.json").read_text())
    assert set(result["results"]) == {"hybrid", "byol"}
    for variant in result["results"].values():
        for task in ("rings", "mergers"):
            assert set(variant[task]) == {"4"}
            assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in variant[task].values())
    for mode in ("hybrid", "byol"):
        assert json.loads((out / "export" / mode / "config.json").read_text())["mode"] == mode
    assert "| hybrid |" in capsys.readouterr().out
    # --limit 24 keeps 6 galaxies per (split, label): 12 in a train split (draws: 6 validate, 4 fit)
    assert seen and max(seen) <= 12

