"""What the RGB and band views share: the order of a view (undistorted recipe, then the BYOL-only
distortions, then normalisation), the head's undistorted view, and the deterministic eval transform.

A subclass says how a batch becomes float (``_input``) and builds ``undistorted`` (geometry,
colour or flux, noise) and ``distortions`` (one module per view). The Dirichlet head reads view 1
before the distortions: votes describe the galaxy as seen, not a blurred or solarised one.
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from hybridssl.augment.config import AugmentConfig


class ViewsBase(nn.Module):
    """``forward(batch) -> (view1, view2)``, ``crop_size`` square; ``with_head_view`` adds the head's view."""

    def __init__(self, cfg: AugmentConfig, mean, std):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self._checked_size = None
        self.normalize = K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std), p=1.0)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _clean(self, images: torch.Tensor) -> torch.Tensor:
        return self.undistorted(images)

    def _checked(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self._checked_size:  # image size is only known at the first batch
            self.cfg.check_image_size(min(images.shape[-2:]))
            self._checked_size = images.shape[-1]
        return self._input(images)

    def with_head_view(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(view1, view2, head view): view 1 before the distortions, the very ``view1`` tensor when
        view 1 never gets any (then its backbone features can be shared)."""
        x = self._checked(images)
        clean1, clean2 = self._clean(x), self._clean(x)
        v1 = self.normalize(self.distortions[0](clean1))
        v2 = self.normalize(self.distortions[1](clean2))
        return v1, v2, (v1 if isinstance(self.distortions[0], nn.Identity) else self.normalize(clean1))

    def head_view(self, images: torch.Tensor) -> torch.Tensor:
        """One undistorted view: what the Dirichlet head reads in supervised mode."""
        return self.normalize(self._clean(self._checked(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.with_head_view(images)[:2]


class EvalBase(nn.Module):
    """Deterministic: resize the short side to ``resize_size``, centre crop ``crop_size``, normalise."""

    def __init__(self, cfg: AugmentConfig, mean, std):
        super().__init__()
        cfg.validate()
        self.pipeline = K.AugmentationSequential(
            K.Resize(cfg.resize_size, side="short", antialias=True, p=1.0),
            K.CenterCrop(cfg.crop_size, p=1.0),
            K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std), p=1.0),
        )

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pipeline(self._input(images))
