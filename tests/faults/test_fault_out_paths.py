import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_out_paths_that_are_files_are_one_line(survives):
    assert survives("out_paths")
