"""The GPU check at its tiniest, on the CPU: every part runs and the JSON has what the table reads."""
import json

from benchmarks import device_check


def test_tiny_device_check_writes_every_part(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert device_check.main(["--tiny", "--device", "cpu", "--workers", "0", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    res = rec["results"]
    assert set(res) >= {"loss", "step", "aug", "loader", "busy", "sync"}
    assert res["step"]["arch"] == "test_resnet" and res["step"]["hybrid_samples_per_s"] > 0
    assert res["busy"]["steps"] == 3 and res["busy"]["samples_per_s_with_startup"] > 0
    assert res["busy"]["busy_fraction"] is None  # no GPU to sample
    assert res["sync"]["steps_checked"] == 2 and res["sync"]["sync_free"]
    assert {"step_ratio", "loader_vs_train", "aug_ratio"} <= set(rec["ratios"])
    printed = capsys.readouterr().out
    assert "sync check: 0 host syncs in 2 steps" in printed and str(out) in printed
