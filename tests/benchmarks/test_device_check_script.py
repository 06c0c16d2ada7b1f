"""benchmarks/device_check.sh tiny on the CPU (CPU=1): the one prepared GPU script, every part,
so it keeps working between rare GPU loans. About 35 s of CPU time (several pretraining
processes, each paying its imports); on a shared, loaded machine it takes longer."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(1500)  # the subprocess's own limit; a loaded machine is slow, not wrong
def test_device_check_script_writes_every_part_tiny_on_cpu(tmp_path, warm_cli):
    out = tmp_path / "out"
    env = dict(os.environ, **warm_cli, OUT=str(out), WORK=str(tmp_path / "work"), CPU="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(parts) == {"versions", "p0_eager", "sync", "small", "p0_compiled", "trace"}
    failed = {k: v for k, v in parts.items() if "failed" in v or "skipped" in v}
    assert not failed, failed
    assert __import__("torch").__version__.startswith(parts["versions"]["packages"]["torch"])
    for name in ("p0_eager", "p0_compiled"):  # samples/s from the run's own metrics
        assert parts[name]["returncode"] == 0 and parts[name]["samples_per_s_by_log_interval"], name
    assert "trainer.compile=true" in parts["p0_compiled"]["command"]
    assert "data.in_memory=false" in parts["p0_eager"]["command"]  # P0 is end to end: the streaming loader
    assert parts["small"]["small_b16"]["samples_per_s_by_log_interval"]
    from omegaconf import OmegaConf
    assert OmegaConf.load(REPO / "configs/pretrain/gpu_small.yaml").data.in_memory is True
    assert parts["sync"]["steps_checked"] >= 1 and parts["sync"]["sync_free"]
    assert (out / "trace.json.gz").stat().st_size > 0 and "ProfilerStep" in parts["trace"]["top_ops"]
    assert len(list(out.iterdir())) <= 8  # the device tool brings back at most 8 files
