import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_outputs_never_destroy_inputs(survives):
    assert len(survives("outputs_keep_inputs")) == 7


def test_float_bands_without_signal_or_of_mixed_kinds(survives):
    assert len(survives("float_bands")) == 5


def test_export_config_fields_are_one_line_naming_the_key(survives):
    assert len(survives("export_config")) == 5


def test_loud_errors_are_one_line(survives):
    assert len(survives("loud_errors")) == 7


def test_quiet_mistakes_warn_or_refuse(survives):
    assert len(survives("quiet_mistakes")) == 3


def test_a_per_shard_run_resumed_on_changed_inputs_is_refused_with_its_rows_intact(survives):
    assert len(survives("survey_resume")) == 2
