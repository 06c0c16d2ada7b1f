"""The LightningModule: one training step for every mode; the mode only decides which terms exist."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from hybridssl.augment.bands import band_normalisation
from hybridssl.augment.factory import two_views
from hybridssl.config import to_dict
from hybridssl.model.losses import campaign_losses, campaign_voted_galaxies, combine_losses, dirichlet_multinomial_nll
from hybridssl.model.hybrid import HybridModel, backbone_args, uses_byol, uses_votes
from hybridssl.schema import Schema
from hybridssl.train.checkpoint import CHECKPOINT_KEY
from hybridssl.train.config import PretrainConfig, resolve_images
from hybridssl.train.guards import is_logging_step
from hybridssl.train.optim import build_optimizer, build_scheduler, scaled_lr, target_momentum



class PretrainModule(pl.LightningModule):
    def __init__(self, cfg: PretrainConfig, schema: Schema, bands: dict | None = None):
        """``bands``: the shard sets' per-band normalisation (``resolve_images``; None for 8-bit RGB),
        read from the data here when ``model.in_chans`` is still null."""
        super().__init__()
        if cfg.model.in_chans is None:
            bands = resolve_images(cfg, schema)
        self.cfg, self.schema, self.bands = cfg, schema, bands
        self.model = HybridModel(cfg.model, cfg.mode, schema.n_answers)
        if cfg.model.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.trainer.compile:  # in place: the state_dict keys (checkpoints, export) stay the same
            for name in ("backbone", "target_backbone"):
                if hasattr(self.model, name):
                    getattr(self.model, name).compile(backend=cfg.trainer.compile_backend)
        self.augment = two_views(cfg.augment, cfg.model.in_chans, bands)
        self.momentum = cfg.optim.target_momentum_start if uses_byol(cfg.mode) else None
        # corrupt samples the stream skipped on this rank, whole run; a device counter (no sync per step)
        self.register_buffer("skipped_samples", torch.zeros((), dtype=torch.int64), persistent=False)

    # -- the step -----------------------------------------------------------------------------
    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.model.channels_last else x

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        byol = sup = conc = None
        # The head reads the batch's labelled rows (its first data.n_labelled) in hybrid and in
        # supervised mode alike: both train on the same votes per step, at the same learning rate.
        n = self.cfg.data.n_labelled
        if uses_byol(self.cfg.mode):
            v1, v2, head_view = self.augment.with_head_view(batch["image"])
            views = self._layout(torch.cat([v1, v2]))  # one pass for both views: faster than two
            features = self.model.features(views)
            byol = self.model.byol_loss(features, views)
            if uses_votes(self.cfg.mode):  # the head shares view 1's features unless it was blurred or solarised
                head_features = features[:n] if head_view is v1 else self.model.features(self._layout(head_view[:n]))
        else:  # supervised (scratch never trains)
            head_features = self.model.features(self._layout(self.augment.head_view(batch["image"][:n])))
        if uses_votes(self.cfg.mode):
            sup, conc = self.model.supervised_loss(head_features, batch["votes"][:n], batch["has_votes"][:n],
                                                   self.schema)
        loss = combine_losses(byol, sup, self.cfg.loss.weighting, self.cfg.loss.supervised_weight)
        self._log_step(batch, loss, byol, sup, conc)
        return loss

    def _log_step(self, batch, loss, byol, sup, conc) -> None:
        """Tensors only, added up on the device: nothing here waits for the GPU (no ``.item()``,
        ``tolist()`` or boolean indexing) except on logging steps, where Lightning reads them anyway."""
        rows = batch["image"].shape[0]
        self.skipped_samples += batch["n_skipped"].sum()
        self.log("train/loss", loss, prog_bar=True, batch_size=rows)
        if byol is not None:
            self.log("train/byol_loss", byol, prog_bar=True, batch_size=rows)
        if sup is not None:
            self.log("train/sup_loss", sup, prog_bar=True, batch_size=rows)
        if not is_logging_step(self.trainer):
            return
        self.log("train/skipped_samples", self.skipped_samples.float(), batch_size=rows)
        if byol is not None:
            self.log("train/momentum", self.momentum, batch_size=rows)
        if conc is not None:
            with torch.no_grad():  # per-campaign losses only on logging steps: they cost a second pass
                n = conc.shape[0]  # the head saw the batch's first n (labelled) rows
                votes = batch["votes"][:n] * batch["has_votes"][:n].unsqueeze(1).to(batch["votes"].dtype)
                per_campaign = campaign_losses(dirichlet_multinomial_nll(conc.detach(), votes, self.schema,
                                                                         validate=False), votes, self.schema)
                voted = campaign_voted_galaxies(votes, self.schema)
            for name, value, n in zip(self.schema.campaigns, per_campaign.tolist(), voted.tolist()):
                if n:
                    self.log(f"train/sup_loss_{name}", value, batch_size=int(n))

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        lr = scaled_lr(self.cfg.optim.base_lr, self.cfg.data.batch_size, self.trainer.world_size,
                       self.trainer.accumulate_grad_batches)
        optimizer = build_optimizer(self.model, self.cfg.optim, lr)
        scheduler = build_scheduler(optimizer, self.cfg.optim, self.cfg.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Lightning calls this once per optimizer step (not per accumulated batch): the target
        follows the online network here, so accumulation does not change the momentum schedule."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if uses_byol(self.cfg.mode):
            # global_step still counts the steps before this one, so it is this step's 0-based index
            self.momentum = target_momentum(self.global_step, self.cfg.trainer.max_steps,
                                            self.cfg.optim.target_momentum_start)
            self.model.update_target(self.momentum)

    # -- checkpoint contents ----------------------------------------------------------------------
    def export_info(self) -> dict:
        """What ``hybridssl export`` needs, written into every checkpoint (plain values only)."""
        aug, in_chans = self.cfg.augment, self.cfg.model.in_chans
        mean, std = (aug.mean, aug.std) if self.bands is None else band_normalisation(in_chans)
        info = {"architecture": self.cfg.model.backbone, "num_features": self.model.num_features,
                "in_chans": in_chans, "image_size": int(aug.crop_size),
                "mean": [float(m) for m in mean], "std": [float(s) for s in std],
                "schema": self.schema.name, "schema_hash": self.schema.hash, "mode": self.cfg.mode,
                "model_args": backbone_args(self.cfg.model)}
        if self.bands is not None:  # float bands: how prepare normalised them (apply needs the same)
            info["bands"] = self.bands
        if uses_votes(self.cfg.mode):
            info["head"] = {"in_features": self.model.num_features, "n_answers": self.schema.n_answers,
                            "dropout": float(self.cfg.model.head_dropout)}
        return info

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {"format_version": 1, "config": to_dict(self.cfg),
                                      "export": self.export_info(), "momentum": self.momentum,
                                      "skipped_samples": int(self.skipped_samples)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        ours = checkpoint.get(CHECKPOINT_KEY, {})
        self.momentum = ours.get("momentum", self.momentum)
        self.skipped_samples.fill_(ours.get("skipped_samples", 0))
