import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_frozen_rank_ends_the_job_within_timeout_plus_launcher_grace(survives):
    assert survives("ddp_frozen")
