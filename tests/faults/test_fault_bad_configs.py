import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_bad_configs_name_the_key_and_the_valid_choices(survives):
    rows = survives("bad_configs")
    assert len(rows) >= 5
