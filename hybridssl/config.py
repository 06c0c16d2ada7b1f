"""Typed configs: YAML files under ``configs/`` merged onto dataclasses.

The YAML files are the one home of defaults; the dataclasses only declare names
and types, so an unknown or mistyped key fails loudly with the valid choices.
Any mapping in a YAML file may name a ``base:`` file (relative to itself) that it extends,
so presets (``configs/augment/byol.yaml``) are written once and reused by whole-run configs.
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence, Type, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")
MAX_YAML_NODES = 100_000  # real configs have a few hundred; an alias bomb has billions


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the key and the valid choices."""


def config_dir() -> Path:
    """The shipped ``configs/``: package data ``hybridssl/configs`` (in a checkout, a link to the
    top-level folder; in a wheel, a copy of it), or ``$HYBRIDSSL_CONFIG_DIR`` when set."""
    env = os.environ.get("HYBRIDSSL_CONFIG_DIR")
    found = Path(env) if env else Path(str(files("hybridssl") / "configs"))
    if not found.is_dir():
        raise FileNotFoundError(f"configs/ not found at {found}" + ("" if env else "; reinstall hybridssl"))
    return found


def resolve_config_path(name_or_path: str | os.PathLike, kind: str) -> Path:
    """A path as given, or ``configs/<kind>/<name>.yaml``."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    shipped = config_dir() / kind / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    available = sorted(q.stem for q in (config_dir() / kind).glob("*.yaml"))
    raise ConfigError(f"no {kind} config {str(name_or_path)!r}; shipped ones: {available}")


def _expand(node, here: Path, seen: tuple):
    """Resolve ``base: FILE`` in any mapping: FILE's content, then this mapping's keys on top."""
    if not isinstance(node, dict):
        return node
    node = {k: _expand(v, here, seen) for k, v in node.items()}
    base = node.pop("base", None)
    if base is None:
        return node
    return OmegaConf.to_container(OmegaConf.merge(_load_yaml(here / base, seen), node))


def expanded_size(text: str) -> int:
    """Nodes of a YAML document once its aliases are expanded, counted without expanding them
    (an alias shares its anchor's node, so each node's size is computed once)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) not in sizes:
            children = node.value if isinstance(node, yaml.SequenceNode) else \
                [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else []
            sizes[id(node)] = 1 + sum(size(c) for c in children)
        return sizes[id(node)]
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return 0 if root is None else size(root)


def read_yaml_mapping(path: Path, error: type = None, what: str = "config") -> dict:
    """A YAML file's top-level mapping; any failure raises ``error`` naming the file. A file
    whose aliases expand past ``MAX_YAML_NODES`` (an alias bomb) is refused before expansion."""
    error = error or ConfigError
    try:
        nodes = expanded_size(Path(path).read_text())
        if nodes > MAX_YAML_NODES:
            raise error(f"{what} {path} expands to {nodes} YAML nodes through its aliases (limit "
                        f"{MAX_YAML_NODES}); refusing it")
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except error:
        raise
    except Exception as e:  # yaml and OS errors come in many types
        raise error(f"cannot read {what} {path}: {e}") from e
    if not isinstance(raw, dict):
        raise error(f"{what} {path} is not a mapping")
    return raw


def _load_yaml(path: Path, seen: tuple = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config 'base:' cycle through {path}")
    return _expand(read_yaml_mapping(path), path.parent, seen + (path,))


def _valid_keys(cls: type, dotted: str) -> list[str]:
    """Keys allowed beside the last component of ``dotted``."""
    parent = dotted.rpartition(".")[0]
    node = OmegaConf.structured(cls)
    sub = OmegaConf.select(node, parent) if parent else node
    return [str(k) for k in sub.keys()] if isinstance(sub, DictConfig) else []


def _merge_error(e: OmegaConfBaseException, cls: type, source: str) -> ConfigError:
    """One line naming the source, the key and (for unknown keys) the valid ones."""
    key = getattr(e, "full_key", None) or ""
    detail = str(getattr(e, "msg", e)).splitlines()[0]
    valid = _valid_keys(cls, key) if isinstance(e, ConfigKeyError) else []
    hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
    where = f"key {key!r}" if key else "a top-level key"
    return ConfigError(f"{source}: config {where}: {detail}{hint}")


def load_config(cls: Type[T], path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Merge ``path`` (and its ``base:`` chain) and ``key=value`` overrides onto ``cls``."""
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not of the form key=value")
    layers = [(f"{path} (or a base: file of it)", _load_yaml(Path(path)))] if path is not None else []
    try:
        layers.append(("command-line overrides", OmegaConf.from_dotlist(list(overrides))))
    except OmegaConfBaseException as e:
        raise ConfigError(f"command-line overrides {list(overrides)}: {str(e).splitlines()[0]}") from None
    cfg = OmegaConf.structured(cls)
    for source, layer in layers:  # one at a time, so an error names where the bad key came from
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            raise _merge_error(e, cls, source) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"config keys without a value: {missing} (set them in YAML or as key=value)")
    obj = OmegaConf.to_object(cfg)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def _in_interval(value: float, interval: str) -> bool:
    """``value`` in ``interval``, written as in maths: ``[0, 1)``, ``(0, inf)``; ``"-1 or [1, inf)"``
    also allows the listed special values."""
    *special, span = [part.strip() for part in interval.split(" or ")]
    if any(value == float(v) for v in special):
        return True
    lo, hi = (float(x) for x in span[1:-1].split(","))
    return (lo <= value if span[0] == "[" else lo < value) and (value <= hi if span[-1] == "]" else value < hi)


def check_ranges(cfg: Any, ranges: dict[str, str]) -> None:
    """Raise :class:`ConfigError` naming the first key whose value (or any element of a list
    value) lies outside its interval in ``ranges`` (dotted key -> interval, see ``_in_interval``)."""
    for key, interval in ranges.items():
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and not _in_interval(float(v), interval):  # null: taken from elsewhere
                *special, span = interval.split(" or ")
                also = f" or {' or '.join(special)}" if special else ""
                raise ConfigError(f"{key} must be in {span}{also}, got {value}")


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
