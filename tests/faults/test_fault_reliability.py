import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_outputs_never_destroy_inputs(survives):
    rows = survives("outputs_keep_inputs")
    assert len(rows) == 7
