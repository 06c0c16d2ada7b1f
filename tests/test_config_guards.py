"""Config values out of range and YAML alias bombs: one error naming the key (or file), fast."""
import pytest

from hybridssl.config import ConfigError, config_dir, load_config, read_yaml_mapping
from hybridssl.train.config import PretrainConfig

DEMO = config_dir() / "pretrain" / "demo.yaml"
LABELLED = "data.labelled=[shards/x]"  # validation of numbers comes before the shard sets are opened


@pytest.mark.parametrize("override, says", [
    ("model.head_dropout=1.0", "model.head_dropout must be in [0, 1), got 1.0"),
    ("model.head_dropout=-0.1", "model.head_dropout must be in [0, 1)"),
    ("optim.base_lr=-0.001", "optim.base_lr must be in (0, inf)"),
    ("optim.betas=[0.9,1.5]", "optim.betas must be in [0, 1), got [0.9, 1.5]"),
    ("data.prefetch_factor=0", "data.prefetch_factor must be in [1, inf)"),
    ("trainer.keep_checkpoints=0", "trainer.keep_checkpoints must be in [1, inf) or -1, got 0"),
    ("model.projection_dim=0", "model.projection_dim must be in [1, inf)"),
    ("trainer.max_steps=0", "trainer.max_steps must be in [1, inf)"),
])
def test_out_of_range_values_name_the_key_and_the_range(override, says):
    with pytest.raises(ConfigError) as e:
        load_config(PretrainConfig, DEMO, [LABELLED, override])
    assert says in str(e.value) and "\n" not in str(e.value)


def test_boundary_values_are_allowed():
    cfg = load_config(PretrainConfig, DEMO, ["data.unlabelled=[shards/u]", "data.labelled=[]", "mode=byol",
                                             "model.head_dropout=0.0", "optim.betas=[0.0,0.999]",
                                             "trainer.keep_checkpoints=-1", "data.prefetch_factor=1"])
    assert cfg.trainer.keep_checkpoints == -1


def test_scratch_may_have_zero_steps():
    assert load_config(PretrainConfig, DEMO, ["mode=scratch", "trainer.max_steps=0"]).trainer.max_steps == 0


def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"bomb.yaml expands to \d+ YAML nodes"):  # expanding would hang
        load_config(PretrainConfig, bomb)


def test_a_few_aliases_still_work(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("x: &v [1, 2]\ny: *v\nz: {a: *v}\n")
    assert read_yaml_mapping(f) == {"x": [1, 2], "y": [1, 2], "z": {"a": [1, 2]}}
