"""benchmarks/curve.py: checkpoint exports named MODE_stepN become points at N x batch samples."""
from benchmarks.curve import curve_points


def _row(group, auc, budget="mean"):
    return {"group": group, "budget": budget, "auc_mean": auc, "auc_lo": auc - 0.05, "auc_hi": auc + 0.05}


def test_points_by_mode_and_samples_seen_with_baselines_apart():
    scores = [_row("hybrid_step100", 0.60), _row("hybrid_step200", 0.65), _row("byol_step100", 0.55),
              _row("hybrid", 0.66), _row("photometric", 0.70), _row("hybrid_step100", 0.9, budget="20")]
    curves, flat = curve_points({"repeated": {"plain": {"scores": scores}}}, batch_size=32, final_step=250)
    assert [p[:2] for p in curves["hybrid"]] == [(3200, 0.60), (6400, 0.65), (8000, 0.66)]
    assert [p[:2] for p in curves["byol"]] == [(3200, 0.55)]
    assert set(flat) == {"photometric"}
    curves, flat = curve_points({"repeated": {"plain": {"scores": scores}}}, batch_size=32)
    assert "hybrid" in flat and len(curves["hybrid"]) == 2
