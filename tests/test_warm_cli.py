"""tests/warm_cli.py, the warm hybridssl the e2e tests give their scripts: a forked command keeps
what a fresh process would have (its exit code, the caller's output streams, directory and
environment), so the scripts prove the same thing, minus the start-up."""
import os
import subprocess


def _run(warm_cli, *cmd, cwd, **env):
    return subprocess.run(list(cmd), cwd=cwd, env=dict(os.environ, **warm_cli, **env), capture_output=True,
                          text=True, timeout=120)


def test_exit_codes_streams_directory_and_environment_are_the_callers(warm_cli, tmp_path):
    ok = _run(warm_cli, warm_cli["HSSL"], "schema", "gz_evo_v0.1", cwd=tmp_path)
    assert ok.returncode == 0 and "206 answers" in ok.stdout
    bad = _run(warm_cli, warm_cli["HSSL"], "export", "missing-run", "--out", "x", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "hybridssl export: error: missing-run: no such checkpoint file or run directory"]
    code = "import os, sys; print(os.getcwd(), os.environ['MARK'], sys.argv[1:])"
    here = _run(warm_cli, warm_cli["PYTHON"], "-c", code, "a", cwd=tmp_path, MARK="seen")
    assert here.stdout.split() == [str(tmp_path), "seen", "['a']"]  # plain python runs as python
    other = _run(warm_cli, warm_cli["PYTHON"], "-m", "platform", cwd=tmp_path)  # not served warm: plain python
    assert other.returncode == 0 and "Linux" in other.stdout
    out = _run(warm_cli, warm_cli["PYTHON"], "-m", "hybridssl.cli", "demo-data", "small", "--n-labelled", "4",
               "--n-unlabelled", "2", "--n-downstream", "4", "--size", "32", "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "small" / "labelled.parquet").is_file()  # a relative --out lands in the caller's folder
