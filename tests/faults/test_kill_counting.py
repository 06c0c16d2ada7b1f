"""A kill counts as a fault only if it landed before the command ended on its own: a run that had
already finished when the kill came tested nothing and must not count as a survived try."""
import subprocess
import sys

from benchmarks.faults.data import _kill_after
from benchmarks.faults.harness import Ctx, kill_landed
from benchmarks.faults.training import _kill_at_step


def spawn(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"], start_new_session=True)


def finished() -> subprocess.Popen:
    p = spawn(0)
    p.wait()
    return p


def test_kill_landed_only_on_a_running_command():
    assert kill_landed(spawn(60))
    assert not kill_landed(finished())


def test_training_and_prepare_kills_report_a_command_that_had_ended(tmp_path):
    ctx = Ctx(tmp_path, quick=True, seed=0)
    assert not _kill_at_step(ctx, finished(), tmp_path / "run", target=1, step_s=0.0, limit=1)
    assert _kill_at_step(ctx, spawn(60), tmp_path / "run", target=1, step_s=0.0, limit=0.2)
    assert not _kill_after(ctx, spawn(60), tmp_path / "out", target=0)[1]  # still running: killed
    assert _kill_after(ctx, finished(), tmp_path / "out", target=5)[1]  # had finished: not a kill
