import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_kill_leftovers_are_removed_and_keep_checkpoints_holds_across_resumes(survives):
    assert survives("checkpoint_housekeeping")
