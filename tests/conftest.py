"""Shared test setup: tests/ on sys.path (for tests/factories.py), few threads on a small machine,
and what the whole run builds once (``built_once``, ``tiny_pretrained``)."""
import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    """Whole scripts first, then the other slow tests: with two workers (``make test``) the long
    runs start at once and the many short tests fill the gaps, instead of one long test ending alone."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2)


def _run_wide_dir(tmp_path_factory) -> Path:
    """A folder every test process of this run sees: pytest-xdist workers share their base temp's parent."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test run, however many worker processes ask (a file lock; the
    others wait, then reuse the folder). Tests read it and never write into it."""
    from filelock import FileLock

    folder = _run_wide_dir(tmp_path_factory) / f"shared-{name}"
    with FileLock(f"{folder}.lock"):
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """One tiny hybrid pretraining run and its export for the whole test run: ``(cfg, last
    checkpoint, export folder)``; the folder holds ``run/`` and ``export/``."""
    from factories import tiny_run_config
    from hybridssl.export.timm_folder import export_checkpoint
    from hybridssl.train.checkpoint import latest_checkpoint
    from hybridssl.train.run import pretrain

    def build(folder):
        pretrain(tiny_run_config(folder))
        export_checkpoint(folder / "run", folder / "export")

    folder = built_once(tmp_path_factory, "tiny-pretrained", build)
    return tiny_run_config(folder, write=False), latest_checkpoint(folder / "run"), folder / "export"


@pytest.fixture(scope="session")
def warm_cli(tmp_path_factory):
    """Environment for a shell script whose ``hybridssl`` (``HSSL``) and ``python -m hybridssl.cli``
    (``PYTHON``) are forked from one process that imported torch once (``tests/warm_cli.py``)."""
    import subprocess

    folder = tmp_path_factory.mktemp("warm")
    root = TESTS.parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    with open(folder / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, str(TESTS / "warm_cli.py"), "serve", str(folder / "cli.sock")],
                                  cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    if server.stdout.readline().strip() != "ready":
        server.kill()
        raise RuntimeError(f"the warm hybridssl server did not start: {(folder / 'server.log').read_text()[-2000:]}")
    yield {"HSSL": str(TESTS / "warm" / "hybridssl"), "PYTHON": str(TESTS / "warm" / "python"),
           "WARM_CLI_SOCKET": str(folder / "cli.sock"), "WARM_CLI_PYTHON": sys.executable}
    server.terminate()
    server.wait(timeout=30)
