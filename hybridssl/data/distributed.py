"""Which process of a job this is, and the seeds derived from it (one place for both).

``rank_and_world_size`` is what the training stream, the pretraining entry point (before
Lightning has started ``torch.distributed``) and exact resume agree on: the initialised process
group, else torchrun's ``RANK``/``WORLD_SIZE``, else SLURM's ``SLURM_PROCID``/``SLURM_NTASKS``
(``srun`` launches), else a single process. :func:`worker_share` is the same for jobs whose
processes share no process group (``predict``/``embed --out DIR/``), where a SLURM array's tasks
split the work too.
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


def local_rank() -> int:
    """This process's index on its node: torchrun's ``LOCAL_RANK``, else srun's ``SLURM_LOCALID``, else 0."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def worker_share() -> tuple[int, int, int]:
    """(index, count, local rank) of this process among a job's independent workers: the torchrun or
    srun rank within each task of a SLURM array (``--array=0-15``: 16 tasks, each its own share).
    A one-line ValueError names a variable that is not an integer or is out of range."""
    env = os.environ
    try:
        rank, world = rank_and_world_size()
        local = local_rank()
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            step = int(env.get("SLURM_ARRAY_TASK_STEP", 1))
            task = (int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))) // step
            tasks = int(env["SLURM_ARRAY_TASK_COUNT"])
            if not 0 <= task < tasks:
                raise ValueError(f"SLURM_ARRAY_TASK_ID={env['SLURM_ARRAY_TASK_ID']} is not one of "
                                 f"SLURM_ARRAY_TASK_COUNT={tasks} tasks (an array with gaps cannot split work)")
            rank, world = task * world + rank, tasks * world
    except ValueError as e:
        raise ValueError(f"launcher environment: {e}") from None
    if not 0 <= rank < world:
        raise ValueError(f"launcher environment: rank {rank} must be in 0..{world - 1}")
    return rank, world, local


def derive_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from integers (base seed, epoch, rank, worker, ...): neighbouring
    tuples give unrelated streams, unlike ``base + rank``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
