import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_bad_configs_name_the_key_and_the_valid_choices(survives):
    rows = survives("bad_configs")
    names = " ".join(r.fault for r in rows)
    for kind in ("unknown key", "wrong type", "crop larger than the shards' image size", "budget larger"):
        assert kind in names
