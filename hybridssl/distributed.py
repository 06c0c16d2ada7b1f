"""Which process of a job this is, and the seeds derived from it (one place for both).

``rank_and_world_size`` is what the training stream, the pretraining entry point (before
Lightning has started ``torch.distributed``) and exact resume agree on: the initialised process
group, else torchrun's ``RANK``/``WORLD_SIZE``, else SLURM's ``SLURM_PROCID``/``SLURM_NTASKS``
(``srun`` launches), else a single process.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch


def rank_and_world_size(rank: Optional[int] = None, world_size: Optional[int] = None) -> tuple[int, int]:
    """``(rank, world_size)``: the arguments when given (both or neither), else from the job."""
    if rank is not None or world_size is not None:
        if rank is None or world_size is None:
            raise ValueError("pass both rank and world_size, or neither")
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ.get(size_var, 1))
    return 0, 1


def derive_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from integers (base seed, epoch, rank, worker, ...): neighbouring
    tuples give unrelated streams, unlike ``base + rank``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
