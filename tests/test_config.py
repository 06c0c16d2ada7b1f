"""Typed config loading: base: presets, key=value overrides and errors that name the key."""
import textwrap
from dataclasses import dataclass, field

import pytest
from omegaconf import MISSING

from hybridssl.config import ConfigError, load_config, resolve_config_path, to_dict, to_yaml


@dataclass
class Crop:
    size: int = MISSING
    mode: str = MISSING


@dataclass
class Run:
    lr: float = MISSING
    epochs: int = MISSING
    tags: list[str] = MISSING
    crop: Crop = field(default_factory=Crop)

    def validate(self):
        if self.crop.size > 512:
            raise ConfigError(f"crop.size={self.crop.size} is larger than the 512 px images")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def presets(tmp_path):
    """run.yaml -> base: mid.yaml -> base: root.yaml; run's crop mapping has its own base: preset."""
    write(tmp_path, "root.yaml", """\
        lr: 0.1
        epochs: 1
        tags: [root]
        crop: {size: 64, mode: centre}
        """)
    write(tmp_path, "mid.yaml", "base: root.yaml\nepochs: 10\n")
    write(tmp_path, "presets/crop/big.yaml", "size: 224\nmode: random\n")
    return write(tmp_path, "run.yaml", """\
        base: mid.yaml
        lr: 0.001
        crop:
          base: presets/crop/big.yaml
          mode: resized
        """)


def test_base_chain_and_nested_preset(presets):
    cfg = load_config(Run, presets)
    assert isinstance(cfg, Run) and isinstance(cfg.crop, Crop)
    assert (cfg.lr, cfg.epochs, cfg.tags) == (0.001, 10, ["root"])  # own key, mid's, root's
    assert (cfg.crop.size, cfg.crop.mode) == (224, "resized")      # nested preset, own key on top


def test_overrides_win_and_are_typed(presets):
    cfg = load_config(Run, presets, ["epochs=3", "crop.size=96", "tags=[a,b]", "lr=2e-4"])
    assert cfg.epochs == 3 and cfg.crop.size == 96 and cfg.tags == ["a", "b"] and cfg.lr == 2e-4
    assert to_dict(cfg)["crop"] == {"size": 96, "mode": "resized"}
    assert "size: 96" in to_yaml(cfg)


def test_no_file_only_overrides():
    cfg = load_config(Run, None, ["lr=1", "epochs=2", "tags=[]", "crop.size=3", "crop.mode=x"])
    assert cfg == Run(lr=1.0, epochs=2, tags=[], crop=Crop(size=3, mode="x"))


def test_unknown_key_in_yaml_names_key_file_and_valid_keys(tmp_path, presets):
    bad = write(tmp_path, "bad.yaml", "base: run.yaml\ncrop: {sise: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config(Run, bad)
    message = str(err.value)
    assert "'crop.sise'" in message and "bad.yaml" in message
    assert "valid keys here: size, mode" in message


def test_unknown_override_names_valid_top_level_keys(presets):
    with pytest.raises(ConfigError, match=r"'epoch'.*valid keys here: lr, epochs, tags, crop"):
        load_config(Run, presets, ["epoch=3"])


@pytest.mark.parametrize("override, key", [("epochs=ten", "'epochs'"), ("crop.size=2.5", "'crop.size'"),
                                           ("lr=fast", "'lr'")])
def test_wrong_type_names_the_key(presets, override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(Run, presets, [override])


def test_wrong_type_in_yaml(tmp_path, presets):
    with pytest.raises(ConfigError, match=r"typo\.yaml.*'epochs'"):
        load_config(Run, write(tmp_path, "typo.yaml", "base: run.yaml\nepochs: many\n"))


def test_missing_values_are_listed(tmp_path):
    path = write(tmp_path, "part.yaml", "lr: 0.1\ncrop: {size: 3}\n")
    with pytest.raises(ConfigError, match=r"without a value: \['crop.mode', 'epochs', 'tags'\]"):
        load_config(Run, path)


def test_override_must_be_key_value(presets):
    with pytest.raises(ConfigError, match="'epochs' is not of the form key=value"):
        load_config(Run, presets, ["epochs"])


def test_validate_hook_runs(presets):
    with pytest.raises(ConfigError, match="crop.size=600"):
        load_config(Run, presets, ["crop.size=600"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config .*absent.yaml"):
        load_config(Run, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="cannot read config .*gone.yaml"):
        load_config(Run, write(tmp_path, "dangling.yaml", "base: gone.yaml\n"))
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config(Run, write(tmp_path, "list.yaml", "- 1\n"))
    write(tmp_path, "a.yaml", "base: b.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(Run, write(tmp_path, "b.yaml", "base: a.yaml\n"))
    assert issubclass(ConfigError, ValueError)


def test_resolve_config_path(tmp_path, monkeypatch):
    assert resolve_config_path("gz2", "schema").name == "gz2.yaml"
    own = write(tmp_path, "mine.yaml", "x: 1\n")
    assert resolve_config_path(own, "schema") == own
    with pytest.raises(ConfigError, match=r"no schema config 'nope'.*gz_evo_v0.1"):
        resolve_config_path("nope", "schema")
    write(tmp_path, "elsewhere/schema/custom.yaml", "x: 1\n")
    monkeypatch.setenv("HYBRIDSSL_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert resolve_config_path("custom", "schema") == tmp_path / "elsewhere" / "schema" / "custom.yaml"
