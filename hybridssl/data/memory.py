"""Small-data mode: shard sets that fit in memory, decoded once and kept on the training device.

Every image is decoded once (``IndexedShards``, in DataLoader workers) into one uint8 tensor
(N, C, H, W) per kind (labelled, unlabelled) on the device, with the votes beside it (row i's
votes are image i's). Batches are then index draws on the device: no workers, no decoding, no
copies from the host, so a run on the shipped ~14k galaxies is limited by the model.

Mixing is the stream's: each batch holds ``data.n_labelled`` labelled rows first, the rest
unlabelled. An epoch is one pass over the larger pool on this rank: each rank takes every
``world_size``-th sample of a seeded permutation (seed, epoch, pool), so every sample is seen
once per epoch across ranks; the smaller pool starts another permutation when it runs out.
The batches are a pure function of (seed, epoch, rank), so exact resume works as with the stream.

``data.in_memory``: ``auto`` (on a GPU, when the decoded images fit ``data.in_memory_max_gib``),
``true`` or ``false`` (the streaming loader). Only local 8-bit JPEG/PNG sets: float band sets and URLs stream.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import torch

from hybridssl.config import ConfigError
from hybridssl.data.indexed import IndexedShards
from hybridssl.data.shardsets import open_shard_set
from hybridssl.data.tars import is_local
from hybridssl.data.distributed import derive_seed, rank_and_world_size
from hybridssl.schema import Schema, load_schema

IN_MEMORY = ("auto", "true", "false")


def decoded_bytes(cfg, schema: Schema) -> tuple[int, bool]:
    """(bytes of every listed image decoded as uint8, whether all sets are local 8-bit RGB)."""
    sets = [open_shard_set(d, schema, cfg.allow_shell_urls) for d in [*cfg.labelled, *cfg.unlabelled]]
    return (sum(sum(s.sizes) * s.in_chans * s.image_size ** 2 for s in sets),
            all(s.bands is None and is_local(s.where) for s in sets))


def use_in_memory(cfg, schema: Schema, device: torch.device) -> bool:
    mode = str(cfg.in_memory).lower()
    if mode not in IN_MEMORY:
        raise ConfigError(f"data.in_memory must be one of {', '.join(IN_MEMORY)}, got {cfg.in_memory!r}")
    if mode == "false":
        return False
    size, rgb = decoded_bytes(cfg, schema)
    fits = size <= cfg.in_memory_max_gib * 2**30
    if mode == "true" and not (fits and rgb):
        raise ConfigError(f"data.in_memory=true but the shard sets hold {size / 2**30:.2f} GiB of decoded images "
                          f"(data.in_memory_max_gib={cfg.in_memory_max_gib})" if rgb else
                          "data.in_memory=true needs local 8-bit RGB shard sets (not float bands, not URLs)")
    return mode == "true" or (device.type == "cuda" and fits and rgb)


def _images_and_votes(rows: list[dict]) -> tuple[torch.Tensor, list]:
    return torch.stack([r["image"] for r in rows]), [r["votes"] for r in rows]


def _decode_all(dirs: list[str], schema: Schema, decode: str, workers: int, with_votes: bool):
    images, votes = [], []
    for d in dirs:
        data = IndexedShards(d, schema, decode)
        loader = torch.utils.data.DataLoader(data, batch_size=256, num_workers=workers, collate_fn=_images_and_votes)
        for image, vote in loader:
            images.append(image)
            if with_votes:
                votes.append(torch.stack(vote))
    return torch.cat(images), (torch.cat(votes) if with_votes else None)


class DevicePool:
    """One kind of sample (labelled or unlabelled) on the device; ``quota`` rows of every batch."""

    def __init__(self, images: torch.Tensor, votes: Optional[torch.Tensor], quota: int, index: int):
        self.images, self.votes, self.quota, self.index = images, votes, quota, index

    def order(self, seed: int, epoch: int, rank: int, world: int, n_rows: int) -> torch.Tensor:
        """``n_rows`` sample indices of this rank for the epoch: permutations of the pool, rank's share of each."""
        out, p, need = [], 0, n_rows
        while need > 0:
            g = torch.Generator().manual_seed(derive_seed(seed, epoch, self.index, p))
            mine = torch.randperm(len(self.images), generator=g)[rank::world]
            out.append(mine[:need])
            need -= len(mine)
            p += 1
        return torch.cat(out).to(self.images.device, non_blocking=True)


class DeviceBatches:
    """The training loader of small-data mode: the stream's interface (``len``, epochs, resume)."""

    def __init__(self, cfg, schema: Schema, device: torch.device, rank: int, world_size: int):
        cfg.validate()
        self.cfg, self.rank, self.world_size, self.n_answers = cfg, rank, world_size, schema.n_answers
        self.pools = []
        for index, (dirs, quota, with_votes) in enumerate([
                (cfg.labelled, cfg.n_labelled, True), (cfg.unlabelled, cfg.batch_size - cfg.n_labelled, False)]):
            if quota:
                images, votes = _decode_all(dirs, schema, cfg.decode, cfg.num_workers, with_votes)
                self.pools.append(DevicePool(images.to(device), None if votes is None else votes.to(device),
                                             quota, index))
        self.batches_per_rank = cfg.epoch_length or max(
            math.ceil(len(p.images) / (world_size * p.quota)) for p in self.pools)
        self.epoch, self._skip = 0, (-1, 0)
        self._epoch_set, self._passes, self.position = False, 0, 0
        self.seed = 0 if cfg.seed is None else cfg.seed  # null: a fresh draw each run
        if cfg.seed is None:
            self.seed = int(torch.randint(0, 2**31 - 1, ()).item())

    def __len__(self) -> int:
        return self.batches_per_rank

    # -- the stream's epoch and resume controls --------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_set = int(epoch), True

    def skip_batches(self, k: int) -> None:
        self._skip = (self.epoch, int(k))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(int(state["epoch"]))
        self.skip_batches(int(state["batches"]))

    def __iter__(self) -> Iterator[dict]:
        if self._passes and not self._epoch_set:
            self.epoch += 1
        self._passes, self._epoch_set = self._passes + 1, False
        skip = self._skip[1] if self._skip[0] == self.epoch else 0
        E = self.batches_per_rank
        orders = [p.order(self.seed, self.epoch, self.rank, self.world_size, E * p.quota) for p in self.pools]
        self.position = skip
        for i in range(skip, E):
            self.position = i + 1  # batches yielded: what a checkpoint taken after this batch resumes from
            yield self._batch([o[i * p.quota:(i + 1) * p.quota] for p, o in zip(self.pools, orders)])

    def _batch(self, rows: list[torch.Tensor]) -> dict:
        images = torch.cat([p.images[r] for p, r in zip(self.pools, rows)])
        labelled = [p for p in self.pools if p.votes is not None]
        n_lab = self.cfg.n_labelled
        votes = torch.zeros(len(images), self.n_answers, device=images.device)
        if labelled:
            votes[:n_lab] = labelled[0].votes[rows[0]]
        return {"image": images, "votes": votes, "has_votes": torch.arange(len(images), device=images.device) < n_lab,
                "n_skipped": torch.zeros((), dtype=torch.int64, device=images.device)}


def build_loader(cfg, schema: Schema | str, device: torch.device, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
    """Small-data mode's :class:`DeviceBatches` when ``data.in_memory`` picks it, else the stream."""
    from hybridssl.data.stream import build_train_loader
    schema = load_schema(schema)
    if use_in_memory(cfg, schema, device):
        return DeviceBatches(cfg, schema, device, *rank_and_world_size(rank, world_size))
    return build_train_loader(cfg, schema, rank, world_size)
