import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_out_of_range_values_and_alias_bombs_are_one_line(survives):
    assert survives("config_ranges")
