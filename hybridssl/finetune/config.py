"""The finetune config: names and types only; the defaults live in ``configs/finetune/base.yaml``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from hybridssl.config import ConfigError

TASKS = ("classification", "regression", "votes")
# a finetune --out folder: Lightning's checkpoints (best, last) live here; the CLI resumes from LAST
CHECKPOINTS, LAST = "checkpoints", "last.ckpt"


@dataclass
class FinetuneConfig:
    task: str = MISSING
    label_column: Optional[str] = MISSING
    split_column: Optional[str] = MISSING
    train_split: str = MISSING
    val_fraction: float = MISSING
    epochs: int = MISSING
    patience: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    layer_decay: Optional[float] = MISSING
    train_blocks: int = MISSING
    head_dropout: float = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    device: str = MISSING
    precision: str = MISSING
    augment: str = MISSING
    rotation_degrees: float = MISSING
    class_weights: Optional[str] = MISSING
    init_vote_head: bool = MISSING
    seed: int = MISSING

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"config key 'task': {self.task!r}; valid choices: {', '.join(TASKS)}")
        if self.task != "votes" and not self.label_column:
            raise ConfigError(f"task {self.task} needs a label column: --label-column NAME (config key "
                              "'label_column')")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"config key 'val_fraction': {self.val_fraction}; must be strictly between 0 and 1")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r}: {getattr(self, key)}; must be >= 1")
        if self.patience < 1:
            raise ConfigError(f"config key 'patience': {self.patience}; must be >= 1")
        if self.train_blocks < -1:
            raise ConfigError(f"config key 'train_blocks': {self.train_blocks}; -1 (all) or a count >= 0")
        if not 0 <= self.rotation_degrees <= 180:
            raise ConfigError(f"config key 'rotation_degrees': {self.rotation_degrees}; must be in [0, 180]")
        if self.class_weights not in (None, "balanced"):
            raise ConfigError(f"config key 'class_weights': {self.class_weights!r}; valid choices: balanced, null")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"config key 'device': {self.device!r}; valid choices: cpu, cuda, auto")
