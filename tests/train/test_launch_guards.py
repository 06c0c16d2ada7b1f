"""Guards around a launch: out_dir lock, config changes on resume, launch records, non-finite
training, and checkpoint housekeeping across resumes."""
import pytest
import torch

from hybridssl.storage.locks import LockError, dir_lock
from hybridssl.train.checkpoint import CheckpointError, load_checkpoint, step_checkpoints
from hybridssl.train.guards import NonFiniteError
from hybridssl.train.run import pretrain


def test_a_held_out_dir_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("trainer.max_steps=1", out_dir=tmp_path / "run")
    with dir_lock(tmp_path / "run", "pretrain"):
        with pytest.raises(LockError, match="in use by pretrain"):
            pretrain(cfg)
    assert not step_checkpoints(tmp_path / "run")


def test_resume_with_another_config_lists_the_keys_unless_allowed(tiny_config, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config("trainer.max_steps=2", out_dir=run))
    changed = tiny_config("trainer.max_steps=4", "data.batch_size=4", "loss.supervised_weight=0.5", out_dir=run)
    with pytest.raises(CheckpointError) as e:
        pretrain(changed)
    msg = str(e.value)
    assert "data.batch_size: 8 -> 4" in msg and "loss.supervised_weight" in msg and "max_steps" not in msg
    assert "resume_allow_changes=[data.batch_size,loss.supervised_weight]" in msg
    assert load_checkpoint(step_checkpoints(run)[0])["global_step"] == 2, "the refused launch trained"

    final = pretrain(tiny_config("trainer.max_steps=4", "data.batch_size=4", "loss.supervised_weight=0.5",
                                 "resume_allow_changes=[data.batch_size,loss.supervised_weight]", out_dir=run))
    assert load_checkpoint(final)["global_step"] == 4
    launches = sorted((run / "launches").glob("*.yaml"))
    assert [p.name[:4] for p in launches] == ["001-", "002-"]  # the refused launch left no record
    assert "batch_size: 8" in launches[0].read_text() and "batch_size: 4" in launches[1].read_text()


def test_an_allowed_change_of_weight_shapes_is_one_line(tiny_config, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config("trainer.max_steps=2", out_dir=run))
    with pytest.raises(CheckpointError, match=r"does not fit this model \(model\.projection.*\(16,") as e:
        pretrain(tiny_config("trainer.max_steps=4", "model.projection_dim=8",
                             "resume_allow_changes=[model.projection_dim]", out_dir=run))
    assert "\n" not in str(e.value)


def test_a_diverging_run_stops_and_keeps_only_finite_checkpoints(tiny_config, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="training loss is not finite at step"):
        pretrain(tiny_config("optim.base_lr=1e30", "trainer.gradient_clip_val=0", "trainer.max_steps=40",
                             "trainer.checkpoint_every_n_steps=1", out_dir=run))
    saved = step_checkpoints(run)
    assert len(saved) < 40
    for path in saved:
        for k, v in load_checkpoint(path)["state_dict"].items():
            assert not v.is_floating_point() or torch.isfinite(v).all(), f"{path.name}: {k}"


def test_resume_removes_temp_files_and_keeps_the_newest_checkpoints(tiny_config, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config("trainer.max_steps=4", "trainer.keep_checkpoints=-1", out_dir=run))
    assert [p.name for p in step_checkpoints(run)] == ["step00000004.ckpt", "step00000002.ckpt"]
    temp = run / "checkpoints" / ".step00000006.ckpt.abc123.tmp"  # what a kill mid-save leaves
    temp.write_bytes(b"partial")
    pretrain(tiny_config("trainer.max_steps=8", "trainer.keep_checkpoints=2", out_dir=run))
    assert not temp.exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step00000006.ckpt", "step00000008.ckpt"]
