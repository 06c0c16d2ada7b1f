import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_killed_rank_ends_the_job_non_zero_quickly_and_resume_works(survives):
    (row,) = survives("distributed")
    assert row.tries >= 1
