"""The training stream: labelled and unlabelled shard sets mixed at a fixed fraction per batch.

Each DataLoader worker reads two WebDataset pipelines (labelled, unlabelled), takes each one's
quota of rows (``round(batch_size * labelled_fraction)`` labelled) and stacks them into one
batch, so the fraction holds in every batch. Images stay uint8 (float32 bands from npy sets;
augmentation runs on the training device). Local shards are read by member offsets (``hybridssl.data.tars``), which
avoids ``tarfile``'s per-header parsing; ``pipe:``/``http:`` shards go through webdataset's reader.

Distribution. ``rank``/``world_size`` come from the arguments, else from the job
(``hybridssl.data.distributed.rank_and_world_size``).

- ``deterministic: false`` (training): every worker draws shards with replacement from the whole
  set (``webdataset.ResampledShards``), so any shard count works with any number of ranks.
- ``deterministic: true``: no resampling; shards are split by rank then by worker (as
  ``wds.split_by_node`` + ``wds.split_by_worker`` do, but with an explicit rank) and each worker
  reads its own shards in a seeded order. A set with fewer shards than ranks x workers is an
  error naming the counts. When shards hold equal numbers of samples and the epoch length is
  one pass, every sample is seen exactly once per epoch; a worker that needs more batches than
  its shards hold starts another seeded pass over them.

Every worker of every rank yields the same number of batches (``__len__`` per rank is
``epoch_length``, or one pass over the data when ``epoch_length`` is null), so DDP never
waits at the end of an epoch for a rank that ran out.

Exact resume. With a seed, the stream is a pure function of (seed, epoch, rank, worker).
Call ``set_epoch(e)`` at each epoch start (if never called, each new pass of the loader
advances the epoch by one). On a mid-epoch resume call ``set_epoch(e)`` then
``skip_batches(k)``: the next pass of epoch ``e`` drops its first ``k`` batches. The DataLoader
takes batches from workers round-robin starting at worker 0, so batch ``j`` of an epoch is made
by "logical worker" ``j % W`` (its seed and shards), and after skipping ``k`` batches physical
worker ``w`` plays logical worker ``(w + k) % W`` from its first unskipped batch on.
Skipped batches are still read and decoded (corrupt samples must be skipped identically).

Corrupt samples (unreadable tar member, undecodable image, wrong size, bad votes or meta) are
skipped through webdataset's handlers and counted: ``batch["n_skipped"]`` is the number skipped
by that worker since its previous batch; the first few are logged.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from itertools import count, islice
from typing import Iterator, List, Optional

import numpy as np
import torch
import webdataset as wds
from omegaconf import MISSING
from torch.utils.data import default_collate

from hybridssl.config import ConfigError
from hybridssl.schema import Schema, load_schema
from hybridssl.data.samples import DECODERS, parse_sample, warm_decoder
from hybridssl.data.shardsets import ShardSet, image_kind, open_shard_set
from hybridssl.data.tars import tar_samples
from hybridssl.data.distributed import derive_seed, rank_and_world_size
from hybridssl.storage.shards import MANIFEST, ShardError

log = logging.getLogger(__name__)
_MAX_CONSECUTIVE_BAD = 1000  # a stream this broken is a wrong dataset, not a few bad samples


def _same_set_key(where: str) -> str:
    """One key per shard set, however its folder is spelled (URLs as given)."""
    return where if "://" in where else os.path.realpath(os.path.expanduser(where))


@dataclass
class DataConfig:
    labelled: List[str] = MISSING        # shard-set directories with votes
    unlabelled: List[str] = MISSING      # shard-set directories read as images only
    batch_size: int = MISSING
    labelled_fraction: float = MISSING   # of every batch
    num_workers: int = MISSING
    epoch_length: Optional[int] = MISSING  # batches per rank per epoch; null = one pass
    shuffle_buffer: int = MISSING        # samples per worker and stream
    seed: Optional[int] = MISSING        # null = fresh randomness each run (no exact resume)
    deterministic: bool = MISSING        # no resampling: split shards by rank and worker
    allow_shell_urls: bool = MISSING     # allow pipe:/http: shard sets (webdataset runs a shell/curl)
    pin_memory: bool = MISSING
    persistent_workers: bool = MISSING
    prefetch_factor: int = MISSING
    decode: str = MISSING                # torchvision | pil
    in_memory: str = MISSING             # auto | true | false: decode once, keep on the device (hybridssl.data.memory)
    in_memory_max_gib: float = MISSING   # auto uses small-data mode when the decoded images fit this

    @property
    def n_labelled(self) -> int:
        return round(self.batch_size * self.labelled_fraction)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.labelled_fraction <= 1.0:
            raise ConfigError(f"data.labelled_fraction must be in [0, 1], got {self.labelled_fraction}")
        if self.labelled_fraction > 0 and self.n_labelled == 0:
            raise ConfigError(f"data.labelled_fraction={self.labelled_fraction} gives 0 labelled rows "
                              f"in a batch of {self.batch_size}; raise it or the batch size")
        if self.n_labelled and not self.labelled:
            raise ConfigError("data.labelled lists no shard sets but data.labelled_fraction > 0")
        if self.batch_size - self.n_labelled and not self.unlabelled:
            raise ConfigError("data.unlabelled lists no shard sets but data.labelled_fraction < 1")
        for key in ("labelled", "unlabelled"):  # a set listed twice would be sampled twice per pass
            seen = {}
            for d in getattr(self, key):
                same = seen.setdefault(_same_set_key(d), d)
                if same is not d:
                    raise ConfigError(f"data.{key} lists the shard set {d} twice ({same!r} and {d!r}); list it once")
        if self.decode not in DECODERS:
            raise ConfigError(f"data.decode must be one of {DECODERS}, got {self.decode!r}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.epoch_length is not None and self.epoch_length < 1:
            raise ConfigError(f"data.epoch_length must be >= 1 or null, got {self.epoch_length}")
        if self.deterministic and self.seed is None:
            raise ConfigError("data.deterministic needs data.seed (an integer)")


# -- shard sets -------------------------------------------------------------------------------
class _SkipCounter:
    """webdataset handler: skip the failing sample or shard, count it, log the first few."""

    def __init__(self):
        self.n = self.consecutive = 0

    def __call__(self, exn: Exception) -> bool:
        self.n += 1
        self.consecutive += 1
        if self.n <= 3:
            log.warning("skipping corrupt sample or shard: %s", exn)
        if self.consecutive > _MAX_CONSECUTIVE_BAD:
            raise ShardError(f"{self.consecutive} corrupt samples in a row; last: {exn}") from exn
        return True


# -- the stream -------------------------------------------------------------------------------
@dataclass
class _Stream:
    sets: List[ShardSet]
    quota: int            # rows of every batch
    with_votes: bool
    index: int            # in seeds, so the two streams differ

    @property
    def urls(self) -> List[str]:
        return [u for s in self.sets for u in s.urls]

    @property
    def sizes(self) -> List[int]:
        return [n for s in self.sets for n in s.sizes]


class TrainStream(torch.utils.data.IterableDataset):
    """Yields whole batches (see the module docstring); use through :func:`build_train_loader`."""

    def __init__(self, cfg: DataConfig, schema: Schema, rank: int, world_size: int):
        cfg.validate()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.cfg, self.schema, self.rank, self.world_size = cfg, schema, rank, world_size
        self.workers = max(1, cfg.num_workers)
        self.streams = []
        for index, (dirs, quota, with_votes) in enumerate([
                (cfg.labelled, cfg.n_labelled, True), (cfg.unlabelled, cfg.batch_size - cfg.n_labelled, False)]):
            if quota:
                sets = [open_shard_set(d, schema, cfg.allow_shell_urls) for d in dirs]
                self.streams.append(_Stream(sets, quota, with_votes, index))
        self._check_sets()
        self.batches_per_rank = cfg.epoch_length or self._one_pass()
        # epoch, epoch the skip applies to, batches to skip; shared with worker processes
        self._state = torch.tensor([0, -1, 0], dtype=torch.int64).share_memory_()
        self._epoch_set, self._passes = False, 0

    def _check_sets(self) -> None:
        sizes = {s.where: s.image_size for st in self.streams for s in st.sets}
        if len(set(sizes.values())) > 1:
            raise ShardError(f"shard sets have different image sizes {sizes}; a batch needs one size")
        self.image_size = next(iter(sizes.values()))
        self.in_chans, self.bands = image_kind([s for st in self.streams for s in st.sets])
        for s in self.streams[0].sets if self.streams[0].with_votes else []:
            if not s.labelled:
                raise ShardError(f"{s.where}/{MANIFEST}: listed in data.labelled but has no votes (labelled: false)")
            if s.n_voted == 0 and self.rank == 0:  # legal, but the vote loss then teaches nothing
                log.warning("%s: listed in data.labelled, but every vote in it is zero: "
                            "the vote loss has no signal from this set", s.where)
        need = self.world_size * self.workers
        for st in self.streams if self.cfg.deterministic else []:
            if len(st.urls) < need:
                kind = "labelled" if st.with_votes else "unlabelled"
                raise ShardError(f"deterministic mode splits shards by rank and worker: the {kind} sets "
                                 f"{[s.where for s in st.sets]} have {len(st.urls)} shards but "
                                 f"{self.world_size} ranks x {self.workers} workers = {need} need one each; "
                                 f"write smaller shards, use fewer workers, or set data.deterministic=false")

    def _one_pass(self) -> int:
        """Batches per rank so that every worker covers all of its samples once."""
        R, W = self.world_size, self.workers
        if self.cfg.deterministic:
            per_worker = max(math.ceil(sum(st.sizes[r::R][w::W]) / st.quota)
                             for st in self.streams for r in range(R) for w in range(W))
        else:
            per_worker = max(math.ceil(sum(st.sizes) / (R * W * st.quota)) for st in self.streams)
        return W * per_worker

    def __len__(self) -> int:
        return self.batches_per_rank

    def worker_batches(self, worker: int) -> int:
        E, W = self.batches_per_rank, self.workers
        return E // W + (worker < E % W)

    # -- epoch control (the trainer calls these) ------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._state[0] = int(epoch)
        self._epoch_set = True

    def skip_batches(self, k: int) -> None:
        """The next pass of the current epoch drops its first ``k`` batches (mid-epoch resume)."""
        self._state[1], self._state[2] = self._state[0], int(k)

    @property
    def epoch(self) -> int:
        return int(self._state[0])

    def batches_to_skip(self) -> int:
        """Batches the next pass of the current epoch drops (0 unless ``skip_batches`` applies)."""
        epoch, skip_epoch, k = self._state.tolist()
        return k if skip_epoch == epoch else 0

    def begin_pass(self) -> None:
        """Called by the loader at each new pass: advance the epoch unless set_epoch was called."""
        if self._passes and not self._epoch_set:
            self._state[0] += 1
        self._passes += 1
        self._epoch_set = False

    # -- iteration -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        w, W = (info.id, info.num_workers) if info else (0, 1)
        if W != self.workers:
            raise RuntimeError(f"stream built for {self.workers} workers is read by {W}; "
                               f"use build_train_loader with the same data.num_workers")
        epoch, k = self.epoch, self.batches_to_skip()
        # Logical worker lw makes batches lw, lw + W, ... of the epoch. The DataLoader asks worker
        # 0 first, so after skipping k batches physical worker w must play logical (w + k) % W.
        lw = (w + k) % W
        skip = max(0, -(-(k - lw) // W))
        counter = _SkipCounter()
        parts = [self._rows(st, epoch, lw, counter) for st in self.streams]
        last = 0
        for i, chunks in enumerate(islice(zip(*parts), self.worker_batches(lw))):
            n_bad, last = counter.n - last, counter.n
            if i >= skip:
                yield self._collate([r for rows in chunks for r in rows], n_bad)

    def _rows(self, st: _Stream, epoch: int, worker: int, counter: _SkipCounter) -> Iterator[list]:
        samples = self._samples(st, epoch, worker, counter)
        while True:
            yield list(islice(samples, st.quota))

    def _collate(self, rows: list, n_bad: int) -> dict:
        """Rows of every stream (labelled first) -> one batch: one stack per tensor, no concatenation.
        Only the image leaves a worker as a tensor (stacked into shared memory by default_collate);
        the small fields travel as numpy (pickled by value) because every tensor a worker sends
        costs a shared-memory file and a descriptor hand-over: ~13% of a 64 px pass when measured.
        ``TrainLoader`` turns them into tensors."""
        labelled = sum(r["votes"] is not None for r in rows)
        votes = np.zeros((len(rows), self.schema.n_answers), dtype=np.float32)
        if labelled:
            votes[:labelled] = torch.stack([r["votes"] for r in rows[:labelled]]).numpy()
        return {"image": default_collate([r["image"] for r in rows]), "votes": votes,
                "has_votes": np.arange(len(rows)) < labelled,
                "id_str": [r["id_str"] for r in rows], "campaign": [r["campaign"] for r in rows],
                "n_skipped": np.int64(n_bad)}

    def _samples(self, st: _Stream, epoch: int, worker: int, counter: _SkipCounter) -> Iterator[dict]:
        cfg, r, R, W = self.cfg, self.rank, self.world_size, self.workers

        def decode(raw):
            out = parse_sample(raw, self.image_size, self.schema.n_answers, st.with_votes, cfg.decode, self.in_chans)
            counter.consecutive = 0
            return out

        def read(shards, shuffle_seed):
            return wds.DataPipeline(shards, tar_samples(handler=counter),
                                    wds.shuffle(cfg.shuffle_buffer, initial=cfg.shuffle_buffer, seed=shuffle_seed),
                                    wds.map(decode, handler=counter))

        if cfg.deterministic:
            mine = st.urls[r::R][worker::W]
            for p in count():  # one seeded pass over this worker's shards, then another if needed
                n = 0
                for n, sample in enumerate(read(wds.SimpleShardList(mine, seed=derive_seed(cfg.seed, epoch, r, worker, st.index, p, 0)),
                                                derive_seed(cfg.seed, epoch, r, worker, st.index, p, 1)), 1):
                    yield sample
                if n == 0:
                    raise ShardError(f"no readable sample in shards {mine}")
        else:
            seeded = cfg.seed is not None
            base = derive_seed(cfg.seed, epoch, r, worker, st.index) if seeded else 0
            shards = wds.ResampledShards(st.urls, seed=base, worker_seed=lambda: 0, deterministic=seeded)
            yield from read(shards, derive_seed(base, 1) if seeded else None)


class TrainLoader(torch.utils.data.DataLoader):
    """A DataLoader over a :class:`TrainStream` that forwards the epoch controls and knows its
    position: Lightning saves ``state_dict()`` in every checkpoint and hands it back to
    ``load_state_dict`` on resume (it iterates a sized loader without prefetching, so the batches
    yielded are the batches trained on)."""

    position = 0  # batches of the current epoch yielded so far

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def skip_batches(self, k: int) -> None:
        self.dataset.skip_batches(k)

    def state_dict(self) -> dict:
        return {"epoch": self.dataset.epoch, "batches": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(int(state["epoch"]))
        self.skip_batches(int(state["batches"]))

    def __iter__(self):
        self.dataset.begin_pass()  # before workers start or resume, so they see the new state
        self.position = self.dataset.batches_to_skip()
        for batch in super().__iter__():
            self.position += 1
            yield _small_fields_as_tensors(batch)


def build_train_loader(cfg: DataConfig, schema: Schema | str, rank: Optional[int] = None,
                       world_size: Optional[int] = None) -> TrainLoader:
    """The training loader for this rank; ``len()`` is batches per rank per epoch."""
    dataset = TrainStream(cfg, load_schema(schema), *rank_and_world_size(rank, world_size))
    warm_decoder(cfg.decode)
    kw = {}
    if cfg.num_workers > 0:
        kw = dict(persistent_workers=cfg.persistent_workers, prefetch_factor=cfg.prefetch_factor)
    return TrainLoader(dataset, batch_size=None, num_workers=cfg.num_workers, collate_fn=_as_is,
                       pin_memory=cfg.pin_memory and torch.cuda.is_available(), **kw)


def _small_fields_as_tensors(batch: dict) -> dict:
    for key in ("votes", "has_votes", "n_skipped"):  # zero-copy views of the unpickled arrays
        batch[key] = torch.as_tensor(batch[key])
    return batch


def _as_is(batch: dict) -> dict:
    """The stream's batches are already tensors; the default (default_convert) would walk every
    id string of every batch for nothing."""
    return batch
