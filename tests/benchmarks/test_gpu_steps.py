"""benchmarks/gpu_steps.sh, tiny and on the CPU: the same script the GPU ran (prepare the shipped
real galaxies -> several pretraining runs at once -> export -> ring benchmark -> validation scores),
so a change that breaks it shows here and not on the next, rare GPU loan."""
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ("trainer.checkpoint_every_n_steps=2 optim.warmup_steps=1 data.batch_size=8 "
        "augment.crop_size=32 augment.resize_size=32")


@pytest.mark.e2e
@pytest.mark.timeout(1200)  # above the subprocess's own 900 s limit
def test_gpu_steps_script_tiny_on_cpu(tmp_path, warm_cli):
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, **warm_cli, OUT=str(out), WORK=str(work), ACCEL="cpu", STEPS="3", LIMIT="16", WORKERS="0",
               RUNS="hybrid:0 supervised:0", PRETRAIN_ARGS=TINY, OMP_NUM_THREADS="1",
               BENCH_ARGS="budgets=[4,all] seeds=[0] linear.cv_folds=2 knn.k=3 repeated.budgets=[4] repeated.draws=2",
               VAL_BUDGETS="4")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_steps.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the seed-0 exports of the pretrained modes travel as tars; scratch is rebuilt wherever they go
    assert sorted(p.name for p in out.glob("export_*.tar")) == ["export_hybrid_seed0.tar",
                                                               "export_supervised_seed0.tar"]
    with tarfile.open(out / "export_hybrid_seed0.tar") as tar:
        assert {"hybrid_seed0/model.safetensors", "hybrid_seed0/config.json"} <= set(tar.getnames())
    for name in ("hybrid_seed0", "supervised_seed0"):  # each run reached its 3 steps
        assert json.loads((work / "export" / name / "config.json").read_text())["checkpoint"]["global_step"] == 3

    results = json.loads((work / "bench" / "rings" / "results.json").read_text())
    assert {c["backbone"] for c in results["cells"]} == {"hybrid_seed0", "supervised_seed0", "scratch_seed0",
                                                         "scratch_seed1", "photometric", "colour", "random_init"}
    validation = json.loads((work / "bench" / "validation_rings.json").read_text())
    assert set(validation) == {"hybrid_seed0", "supervised_seed0", "scratch_seed0", "scratch_seed1"}
    with tarfile.open(out / "results.tgz") as tar:
        names = tar.getnames()
    assert "bench/rings/results.md" in names and not any(n.endswith(".npz") for n in names)
