import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_diverging_run_stops_keeps_finite_checkpoints_and_is_not_exported(survives):
    assert len(survives("non_finite")) == 4
