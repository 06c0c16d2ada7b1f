import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_two_pretrain_runs_on_one_out_dir_refuse_and_a_stale_lock_is_taken_over(survives):
    assert survives("run_lock")
