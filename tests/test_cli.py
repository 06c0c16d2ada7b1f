"""The `hybridssl` entry point: the schema command, every built command's --help, error exits."""
import errno
import importlib.util
import subprocess
import sys

import pytest

from hybridssl.cli import COMMANDS, USER_ERROR, main, run_command
from hybridssl.config import ConfigError
from hybridssl.storage.locks import LockError


def module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # parent package missing
        return False


def test_schema_command_prints_counts_without_importing_torch():
    code = ("import sys; from hybridssl.cli import main; rc = main(['schema', 'gz_evo_v0.1']); "
            "assert 'torch' not in sys.modules, 'schema command imported torch'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "65 questions" in done.stdout and "206 answers" in done.stdout
    assert "6 campaigns" in done.stdout


def test_schema_command_lists_columns(capsys):
    assert main(["schema", "gz2", "--columns"]) == 0
    out = capsys.readouterr().out
    assert "10 questions" in out and "30 answers" in out
    assert "bar-gz2" in out and "smooth-or-featured-gz2_featured-or-disk" in out


BUILT = [name for name, (module, _) in COMMANDS.items() if module_exists(module)]


def test_schema_is_built():
    assert "schema" in BUILT


@pytest.mark.parametrize("name", BUILT)
def test_help_of_each_built_command(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hybridssl {name}") and "--help" in out
    assert COMMANDS[name][1] in " ".join(out.split())  # the one-line description


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main([]) == 2


def test_user_errors_exit_2_with_a_message(capsys):
    assert main(["schema", "no-such-schema"]) == 2
    assert "unknown schema 'no-such-schema'" in capsys.readouterr().err


def test_unbuilt_command_says_so(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "ghost", ("hybridssl.no_such_module", "not written yet"))
    assert main(["ghost", "--help"]) == 2
    assert "command 'ghost' is not available" in capsys.readouterr().err


def test_missing_dependency_inside_a_command_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "broken_command.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "broken", ("broken_command", "imports something absent"))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        main(["broken"])


def test_plain_value_errors_keep_their_traceback(monkeypatch, tmp_path):
    (tmp_path / "buggy_command.py").write_text(
        "def add_arguments(parser):\n    pass\n\ndef run(args):\n    raise ValueError('a bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "buggy", ("buggy_command", "raises a bare ValueError"))
    with pytest.raises(ValueError, match="a bug"):
        main(["buggy"])


@pytest.mark.parametrize("error", [ConfigError("bad key x"), LockError("held by run 7"), FileNotFoundError("no f"),
                                   OSError(errno.EROFS, "Read-only file system"),  # issue 24: read-only --out
                                   IsADirectoryError(errno.EISDIR, "Is a directory")])
def test_user_errors_exit_2_with_one_line(error, capsys):
    def fail():
        raise error
    assert run_command("prog", fail) == USER_ERROR == 2
    assert capsys.readouterr().err == f"prog: error: {error}\n"


def test_run_command_passes_status_and_ctrl_c():
    assert run_command("prog", lambda: None) == 0 and run_command("prog", lambda: 1) == 1

    def interrupted():
        raise KeyboardInterrupt
    assert run_command("prog", interrupted) == 130


def test_benchmark_scripts_exit_like_the_cli_on_a_user_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--quick", "--config", "no-such-config",
                        "--only", "loss", "--out", str(tmp_path / "t.json")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    from hybridssl.config import config_dir
    shipped = sorted(c.stem for c in (config_dir() / "pretrain").glob("*.yaml"))
    assert {"base", "demo", "gz_evo"} <= set(shipped)
    assert p.stderr.strip().splitlines() == [
        "python -m benchmarks.throughput: error: no pretrain config 'no-such-config'; "
        f"shipped ones: {shipped}"]


def test_overrides_may_sit_on_both_sides_of_a_flag():
    from hybridssl.cli import _parse
    args = _parse("pretrain", ["mode=byol", "--config", "demo", "trainer.max_steps=3", "--print-config", "seed=1"])
    assert args.overrides == ["mode=byol", "trainer.max_steps=3", "seed=1"] and args.config == "demo"
    assert args.print_config and args.command == "pretrain"


def test_progress_in_a_log_writes_a_few_lines_not_a_bar(capsys):
    from hybridssl.cli import LogProgress, progress

    bar = progress(range(1000), desc="stage", unit="gal")  # pytest's stderr is not a terminal
    assert isinstance(bar, LogProgress)
    assert sum(1 for _ in bar) == 1000
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines() == [err.splitlines()[-1]]
    assert err.startswith("stage: done, 1000/1000 gal in ")


def test_progress_in_a_log_reports_percent_steps_of_a_long_stage(capsys):
    from hybridssl.cli import LogProgress

    with LogProgress(None, total=8, desc="cells", unit="cell", quiet_s=0.0) as bar:
        for _ in range(8):
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["cells: 25%", "cells: 50%", "cells: 75%", "cells: done"]


def test_progress_on_a_terminal_is_tqdm_and_can_be_silenced(monkeypatch, capsys):
    import tqdm

    from hybridssl.cli import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress(total=3, desc="x")
    assert isinstance(bar, tqdm.tqdm)
    bar.close()
    capsys.readouterr()
    assert list(progress([1, 2], enabled=False)) == [1, 2] and capsys.readouterr().err == ""


def test_progress_in_a_log_says_nothing_when_its_stage_fails(capsys):
    from hybridssl.cli import LogProgress

    with pytest.raises(RuntimeError):
        with LogProgress(None, total=4, desc="prepare", unit="img") as bar:
            bar.update()
            raise RuntimeError("row 3 is bad")
    assert capsys.readouterr().err == ""
