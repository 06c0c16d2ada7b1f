"""The wheel a cluster container installs: built from this checkout, installed apart from it, run
from another directory. Configs and label schemas must come from inside the installed package."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def source_copy(dest: Path) -> Path:
    """The files a wheel is built from, without the shipped galaxy images (not in the wheel) and
    without touching the checkout (pip builds in the source tree)."""
    dest.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.tar", "*.parquet", "*.jpg", "*.png")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("hybridssl", "configs", "data_prep", "benchmarks"):
        shutil.copytree(REPO / name, dest / name, ignore=skip, symlinks=True)
    return dest


def test_installed_wheel_runs_schema_prepare_and_pretrain_from_elsewhere(tmp_path):
    src = source_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("hybridssl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "hybridssl/configs/schema/gz_evo_v0.1.yaml" in names and "hybridssl/configs/launch/slurm.sbatch" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    shutil.rmtree(src)  # nothing may be read from the source any more

    # the dependencies come from this interpreter's environment; hybridssl only from the install
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYBRIDSSL_CONFIG_DIR")}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS="1")
    work = tmp_path / "elsewhere"
    work.mkdir()
    hssl = target / "bin" / "hybridssl"

    def run(*args, timeout=600):
        done = subprocess.run([sys.executable, str(hssl), *map(str, args)], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"hybridssl {args[0]}: {done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import hybridssl, hybridssl.config as c; "
                            "print(hybridssl.__file__); print(c.config_dir())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where
    assert "206" in run("schema", "gz_evo_v0.1")  # GZ-Evo v0.1's answers, from the packaged schema
    run("demo-data", "data", "--n-labelled", "24", "--n-unlabelled", "16", "--n-downstream", "8",
        "--n-heldout", "4", "--size", "32", "--workers", "1")
    run("prepare", "--catalog", "data/labelled.parquet", "--out", "shards", "--image-size", "32", "--workers", "1")
    run("pretrain", "--config", "demo", "mode=supervised", "out_dir=run", "data.labelled=[shards]",
        "data.unlabelled=[]", "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2", "optim.warmup_steps=1",
        "data.batch_size=8", "data.num_workers=0", "augment.crop_size=32", "augment.resize_size=32",
        "augment.blur_kernel=3", "model.backbone=test_resnet", "trainer.progress_bar=false")
    assert (work / "run" / "checkpoints" / "step00000002.ckpt").is_file()


def test_constraints_pin_every_dependency_within_setup_cfg_ranges():
    """make install uses constraints.txt: every install/test requirement has a tested pin its range allows."""
    import configparser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines() + cfg["options.extras_require"]["test"].splitlines()
    for line in lines:
        if line.strip() and not line.strip().startswith("#"):
            req = Requirement(line.strip())
            name = canonicalize_name(req.name)
            assert name in pins, f"{req.name} has no pin in constraints.txt"
            assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req}"
    assert "-c constraints.txt" in (REPO / "Makefile").read_text()
