import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_second_writer_on_a_run_folder_is_refused_and_a_stale_lock_is_taken_over(survives):
    assert len(survives("run_lock")) == 3
