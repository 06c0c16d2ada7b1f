import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_pickles_pipe_urls_and_path_traversal_are_refused(survives):
    rows = survives("security")
    assert len(rows) == 4
