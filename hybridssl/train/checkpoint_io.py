"""Lightning's checkpoint writer, made atomic: temp file + fsync + rename on save, tensor-only loads."""
from __future__ import annotations

from typing import Any, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from hybridssl.storage.atomic import atomic_path
from hybridssl.train.checkpoint import load_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: temp file + fsync + rename on save; weights_only on load."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            try:
                torch.save(checkpoint, f)
            except RuntimeError as e:  # torch's writer wraps the OSError (ENOSPC, EFBIG) of our file
                cause = e.__context__
                if isinstance(cause, OSError):
                    raise OSError(cause.errno, cause.strerror) from e
                raise

    def load_checkpoint(self, path, map_location: Any = None, weights_only: Optional[bool] = None) -> dict:
        return load_checkpoint(path, map_location=map_location or "cpu")
