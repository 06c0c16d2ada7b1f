"""Options a GPU user expects (issue 22): trainer.compile, the progress bar only where it is seen."""
from types import SimpleNamespace

from hybridssl.train.checkpoint import load_checkpoint
from hybridssl.train.progress import progress_callbacks, shows_progress
from hybridssl.train.run import pretrain


def test_compiled_backbones_train_and_checkpoint_under_the_usual_keys(tiny_config, tmp_path):
    plain = load_checkpoint(pretrain(tiny_config("trainer.max_steps=2", out_dir=tmp_path / "plain")))
    compiled = load_checkpoint(pretrain(tiny_config("trainer.max_steps=2", "trainer.compile=true",
                                                    "trainer.compile_backend=eager", out_dir=tmp_path / "c")))
    assert compiled["global_step"] == 2
    assert set(compiled["state_dict"]) == set(plain["state_dict"])  # export reads the same names


def test_progress_bar_only_in_a_terminal_and_never_under_slurm(monkeypatch):
    t = SimpleNamespace(progress_bar=True, log_every_n_steps=50)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert shows_progress(t, slurm=False) and not shows_progress(t, slurm=True)
    assert progress_callbacks(t, slurm=False)[0].refresh_rate == 50  # reads metrics on logging steps only
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert not shows_progress(t, slurm=False) and progress_callbacks(t, slurm=False) == []


def test_small_data_mode_resumes_exactly(tiny_config, tmp_path):
    """Small-data mode through Lightning: resumed from the step-2 checkpoint, 4 steps equal 4 straight ones."""
    import shutil

    import torch
    straight = pretrain(tiny_config("data.in_memory=true", out_dir=tmp_path / "a"))  # checkpoints at 2 and 4
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "step00000002.ckpt", tmp_path / "b" / "checkpoints")
    resumed = pretrain(tiny_config("data.in_memory=true", out_dir=tmp_path / "b"))
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert b["global_step"] == 4
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], msg=k)
