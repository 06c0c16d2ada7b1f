"""``PretrainConfig``: every knob of a pretraining run (values live in ``configs/pretrain/*.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from hybridssl.augment.config import AugmentConfig
from hybridssl.config import ConfigError, check_ranges
from hybridssl.data import DataConfig
from hybridssl.model.losses import WEIGHTINGS
from hybridssl.model.hybrid import MODES, ModelConfig, uses_votes

OPTIMIZERS = ("adamw", "lars")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
# The allowed values of every numeric key, in one place (intervals as in maths; "X or" adds a value)
RANGES = {
    "seed": "[0, inf)",
    "model.in_chans": "[1, inf)", "model.projection_hidden_dim": "[1, inf)", "model.projection_dim": "[1, inf)",
    "model.prediction_hidden_dim": "[1, inf)", "optim.target_momentum_start": "[0, 1]", "model.head_dropout": "[0, 1)",
    "loss.supervised_weight": "[0, inf)",
    "optim.base_lr": "(0, inf)", "optim.weight_decay": "[0, inf)", "optim.warmup_steps": "[0, inf)",
    "optim.final_lr_fraction": "[0, 1]", "optim.betas": "[0, 1)", "optim.momentum": "[0, 1)",
    "trainer.accumulate_grad_batches": "[1, inf)", "trainer.gradient_clip_val": "[0, inf)",
    "trainer.log_every_n_steps": "[1, inf)", "trainer.checkpoint_every_n_steps": "[1, inf)",
    "trainer.keep_checkpoints": "-1 or [1, inf)", "trainer.ddp_timeout_s": "[1, inf)",
    "trainer.requeue_check_every_n_steps": "[1, inf)",
    "data.prefetch_factor": "[1, inf)",
}


@dataclass
class LossConfig:
    weighting: str = MISSING          # magnitude_matched | fixed
    supervised_weight: float = MISSING


@dataclass
class OptimConfig:
    name: str = MISSING               # adamw | lars
    base_lr: float = MISSING          # per 256 samples; scaled by the global batch / 256
    weight_decay: float = MISSING     # never applied to biases and normalisation parameters
    warmup_steps: int = MISSING
    final_lr_fraction: float = MISSING  # cosine decays the lr to base * fraction at the last step
    betas: List[float] = field(default_factory=lambda: MISSING)  # adamw
    momentum: float = MISSING         # lars
    target_momentum_start: float = MISSING  # BYOL target EMA at step 0; cosine to 1 at the last step


@dataclass
class TrainerConfig:
    max_steps: int = MISSING          # optimizer steps; schedules (lr, momentum) span exactly these
    accelerator: str = MISSING        # auto | cpu | gpu
    devices: str = MISSING            # processes per node: auto (launcher env, else all GPUs or 1) or N
    num_nodes: str = MISSING          # auto (launcher env, else 1) or N
    precision: str = MISSING          # 32-true | bf16-mixed | 16-mixed
    accumulate_grad_batches: int = MISSING
    gradient_clip_val: float = MISSING  # 0 = no clipping
    log_every_n_steps: int = MISSING
    checkpoint_every_n_steps: int = MISSING
    keep_checkpoints: int = MISSING   # newest k step checkpoints kept (-1 = all)
    progress_bar: bool = MISSING      # only ever shown in a terminal, never under SLURM
    compile: bool = MISSING           # torch.compile the online and target backbones
    compile_backend: str = MISSING    # torch.compile backend: inductor (GPU) | eager (tests) | ...
    sync_batchnorm: bool = MISSING    # GPU only; ignored on CPU
    ddp_timeout_s: int = MISSING      # a rank waiting this long for a dead peer fails the job
    requeue_check_every_n_steps: int = MISSING  # SLURM jobs: steps between agreeing on the requeue signal


@dataclass
class PretrainConfig:
    mode: str = MISSING               # hybrid | byol | supervised | scratch
    schema: str = MISSING             # shipped schema name or YAML path
    seed: int = MISSING
    out_dir: str = MISSING
    resume: str = MISSING             # never | auto (newest complete checkpoint in out_dir) | PATH.ckpt
    resume_allow_changes: List[str] = field(default_factory=lambda: MISSING)  # keys a resume may change
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _choice("mode", self.mode, MODES)
        # One data section serves every mode (supervised reads the same batches and trains on
        # their labelled rows); the labelled fraction only means something with both kinds of sets.
        if not self.data.unlabelled:
            self.data.labelled_fraction = 1.0
        elif not self.data.labelled:
            self.data.labelled_fraction = 0.0
        _choice("loss.weighting", self.loss.weighting, WEIGHTINGS)
        _choice("optim.name", self.optim.name, OPTIMIZERS)
        _choice("trainer.precision", str(self.trainer.precision), PRECISIONS)
        _choice("trainer.accelerator", self.trainer.accelerator, ACCELERATORS)
        import timm  # the allow-list of backbones: config values never name arbitrary code
        if self.model.backbone not in timm.list_models():
            close = timm.list_models(f"*{self.model.backbone.split('.')[0][:6]}*")[:10]
            raise ConfigError(f"model.backbone {self.model.backbone!r} is not a timm model; "
                              f"see timm.list_models() (similar: {close})")
        for key in ("devices", "num_nodes"):
            value = str(getattr(self.trainer, key))
            if value != "auto" and not (value.isdigit() and int(value) >= 1):
                raise ConfigError(f"trainer.{key} must be 'auto' or a positive integer, got {value!r}")
        # a warm-up longer than a short run just never ends: allowed
        check_ranges(self, {**RANGES, "trainer.max_steps": "[0, inf)" if self.mode == "scratch" else "[1, inf)"})
        if len(self.optim.betas) != 2:
            raise ConfigError(f"optim.betas must be two numbers [beta1, beta2], got {self.optim.betas}")
        if self.resume not in ("never", "auto") and not self.resume.endswith(".ckpt"):
            raise ConfigError(f"resume must be 'never', 'auto' or a .ckpt path, got {self.resume!r}")
        if uses_votes(self.mode) and not self.data.labelled:
            raise ConfigError(f"mode={self.mode} trains on votes: data.labelled must list labelled shard sets")
        if self.mode != "scratch":
            self.data.validate()
        check_augment = getattr(self.augment, "validate", None)
        if callable(check_augment):
            check_augment()


def resolve_images(cfg: PretrainConfig, schema) -> Optional[dict]:
    """Set ``model.in_chans`` from the shard sets' manifests (a number in the config must match
    them); returns their per-band normalisation, None for 8-bit RGB sets."""
    from hybridssl.data.shardsets import image_kind, open_shard_set

    dirs = [*cfg.data.labelled, *cfg.data.unlabelled]
    if not dirs:
        if cfg.model.in_chans is None:
            raise ConfigError("model.in_chans is null (take it from the data) but data lists no shard sets; "
                              "list them or set model.in_chans")
        return None
    in_chans, bands = image_kind([open_shard_set(d, schema, cfg.data.allow_shell_urls) for d in dirs])
    if cfg.model.in_chans not in (None, in_chans):
        raise ConfigError(f"model.in_chans={cfg.model.in_chans}, but the shard sets {dirs} hold {in_chans}-band "
                          f"images; set model.in_chans={in_chans} or null (from the data)")
    cfg.model.in_chans = in_chans
    return bands


def _choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key} {value!r} is not one of {', '.join(choices)}")
