"""Survey-scale ``predict`` and ``embed``: ``--out DIR/`` (a trailing slash, or a folder that
exists) writes one parquet per input shard, ``shard-000123.tar`` -> ``DIR/shard-000123.parquet``,
and, once every shard has its file, ``DIR/_manifest.json`` (rows, first/last id, sha256 and
bytes per file; written only after checking that every id occurs exactly once).

Processes: under torchrun, srun or a SLURM array (:func:`hybridssl.data.distributed.worker_share`) rank r
of W takes shards r, r+W, r+2W, ... in manifest order; ``--device cuda`` becomes ``cuda:LOCAL_RANK``. Ranks share no process group, only the folder: every file is written
atomically, so it exists only when complete; a re-run skips shards whose file exists; whichever
rank finds every file present writes the manifest (the same content if two do). So a rank that
finishes hours before the slowest waits on no collective timeout, and nothing is torn down.

``DIR/_run.json`` records the command, model and options, and the content digests of what the rows
depend on: every file of the model's export folder (weights, head, config) and the shard set's
manifest (which holds every shard's sha256); a re-run with any of them changed is refused, naming
it, so one folder never mixes two models or two versions of a shard set. The ``_`` prefix makes pandas/pyarrow skip both JSON files:
``pd.read_parquet(DIR)`` reads all predictions as one table, and ``similar``/``anomalies`` read an
embeddings folder (:func:`read_embedding_parts`), centred on the whole set's mean.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import itertools
import json
import os
import sys
import time
import zlib
from pathlib import Path

from hybridssl.storage.atomic import atomic_write_text
from hybridssl.data.distributed import worker_share
from hybridssl.storage.shards import is_local, read_manifest, sha256_file, shard_names

OUT_MANIFEST = "_manifest.json"
RUN_FILE = "_run.json"
FORMAT = "hybridssl-survey"


class SurveyError(ValueError):
    """A per-shard output folder cannot be written or read as asked."""


def is_survey_out(out: str) -> bool:
    return str(out).endswith(("/", os.sep)) or Path(out).is_dir()


def ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process's share of the shards; (0, 1, 0) alone."""
    try:
        return worker_share()
    except ValueError as e:
        raise SurveyError(str(e)) from None


def model_digests(model_dir: str) -> dict[str, str]:
    """{file name: sha256} of every file of an export folder (weights, heads, config.json)."""
    return {p.name: sha256_file(p) for p in sorted(Path(model_dir).iterdir()) if p.is_file()}


def manifest_digest(manifest: dict) -> str:
    """sha256 of a shard set's manifest as read (it lists every shard's sha256 and row count)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _changed(key: str, old, new) -> str:
    if key == "model_sha256":
        files = sorted(f for f in {*old, *new} if old.get(f) != new.get(f))
        return (f"the model's files changed since this folder was started ({', '.join(files)}: another "
                "checkpoint exported into the same --model folder?)")
    if key == "shards_manifest_sha256":
        return "the shard set's manifest changed since this folder was started (re-prepared or edited)"
    return f"{key}: {old!r} there, {new!r} now"


def rank_device(device: str, local_rank: int) -> str:
    return f"cuda:{local_rank}" if device == "cuda" else device


def part_name(shard: str) -> str:
    return shard.removesuffix(".tar") + ".parquet"


def shard_seed(seed: int, shard: str) -> int:
    """MC-dropout seed of one shard: the same whichever rank takes it, in whatever order."""
    return zlib.crc32(f"{seed}:{shard}".encode())


def claim(out: Path, run: dict) -> None:
    """Record ``run`` in ``out``, or refuse when ``out`` holds another run or unrelated files."""
    path = out / RUN_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        changed = [k for k in {**old, **run} if old.get(k) != run.get(k)]
        if changed:
            why = "; ".join(_changed(k, old.get(k) or {}, run.get(k) or {}) if k.endswith("sha256")
                            else _changed(k, old.get(k), run.get(k)) for k in changed)
            raise SurveyError(f"{out}: holds the outputs of another run ({why}); re-run it with what it was "
                              "started with to finish it, or choose a new --out")
        return
    if out.is_file():
        raise SurveyError(f"--out {out}: is a file; a per-shard output needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    strangers = sorted(p.name for p in out.iterdir() if not p.name.startswith((".", "_")))
    if strangers:
        raise SurveyError(f"--out {out}: not empty ({strangers[0]}, ...) and not a per-shard output folder; "
                          "choose a new or empty folder")
    atomic_write_text(path, json.dumps(run, indent=1))


@contextlib.contextmanager
def shard_dataset(where: str, manifest: dict, name: str, model):
    """The galaxies of one shard, local or fetched from a URL, checked against the model."""
    from hybridssl.apply.sources import check_shards
    from hybridssl.data import IndexedShards
    from hybridssl.storage.remote import join
    from hybridssl.storage.shards import fetched_shard

    if is_local(where):
        yield check_shards(IndexedShards(where, only=[name]), where, model.schema, model.image_size,
                           model.in_chans, model.bands)
        return
    with fetched_shard(where, manifest, name) as local:
        yield check_shards(IndexedShards(local, only=[name]), join(where, name), model.schema, model.image_size,
                           model.in_chans, model.bands)


def run_shards(args, what: str, model, run: dict, write_part) -> int:
    """This rank's share of the shards of ``--shards``: ``write_part(dataset, shard, path)`` for
    each whose output is missing; then the manifest if every output exists."""
    if args.catalog:
        raise SurveyError(f"--out {args.out}: one file per shard needs --shards; with --catalog give "
                          "--out FILE.parquet")
    start, (rank, world, _) = time.perf_counter(), ranks()
    out = Path(args.out)
    source = read_manifest(args.shards)
    names = [n for n, s in zip(shard_names(source, args.shards), source["shards"]) if s["n_samples"] > 0]
    where = str(Path(args.shards).resolve()) if is_local(args.shards) else args.shards
    claim(out, {"command": what, "shards": where, "model": str(Path(args.model).resolve()), **run,
                "model_sha256": model_digests(args.model), "shards_manifest_sha256": manifest_digest(source)})
    mine = names[rank::world]
    todo = [n for n in mine if not (out / part_name(n)).exists()]
    print(f"{what}: rank {rank} of {world}: {len(mine)} of {len(names)} shards, {len(mine) - len(todo)} already "
          "written", file=sys.stderr)
    for name, dataset in rank_shards(args, source, todo, model):
        write_part(dataset, name, out / part_name(name))
        record_part(out, name)
    missing = [n for n in names if not (out / part_name(n)).exists()]
    if missing:
        print(f"{what}: rank {rank} done; {len(missing)} shard(s) left to other ranks, the last to finish writes "
              f"{OUT_MANIFEST}", file=sys.stderr)
        return 0
    doc = write_manifest(out, what, source, names)
    print(f"{what}: {doc['n_rows']} galaxies in {len(names)} files ({len(todo)} written by rank {rank} in "
          f"{time.perf_counter() - start:.1f} s) -> {out}/ with {OUT_MANIFEST}")
    return 0


def rank_shards(args, source: dict, names: list[str], model):
    """(shard, dataset) for each of ``names``. Local shards: one loader for all of them, so its
    workers start once and read the next shard while this one's last batches are computed; each
    shard's part is a :class:`PreBatched` (no batch spans two shards). URLs: one shard at a time,
    fetched to a temp file."""
    if not is_local(args.shards):
        for name in names:
            with shard_dataset(args.shards, source, name, model) as dataset:
                yield name, dataset
        return
    if not names:
        return
    import torch

    from hybridssl.apply.inference import PreBatched
    from hybridssl.data.indexed import collate_samples

    sizes = {s["name"]: int(s["n_samples"]) for s in source["shards"]}
    with shard_dataset(args.shards, source, names[0], model) as first:  # the model's checks, once
        n_answers = first.n_answers
    chain = ShardChain(args.shards, names, [sizes[n] for n in names])
    per_shard = [[range(i, min(i + args.batch_size, end)) for i in range(start, end, args.batch_size)]
                 for start, end in zip(chain.starts, chain.starts[1:])]
    loader = torch.utils.data.DataLoader(
        chain, batch_sampler=[b for batches in per_shard for b in batches], num_workers=args.workers,
        pin_memory=model.fast_gpu, collate_fn=functools.partial(collate_samples, n_answers=n_answers))
    stream = iter(loader)
    for name, batches in zip(names, per_shard):
        yield name, PreBatched(itertools.islice(stream, len(batches)), sizes[name])


class ShardChain:
    """The samples of several shards of one local set as one map-style dataset. A shard is indexed
    (its tar headers read) only when a process first reads from it, and each process keeps the
    two it read last: a rank's 1,500 shards are never indexed at once, in the main process or in
    any worker."""

    def __init__(self, where: str, names: list[str], sizes: list[int]):
        self.where, self.names = where, names
        self.starts = list(itertools.accumulate(sizes, initial=0))
        self._open: dict = {}

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> dict:
        import bisect

        from hybridssl.data import IndexedShards

        s = bisect.bisect_right(self.starts, i) - 1
        if s not in self._open:
            if len(self._open) >= 2:
                self._open.pop(next(iter(self._open)))
            self._open[s] = IndexedShards(self.where, only=[self.names[s]])
        return self._open[s][i - self.starts[s]]

    def __getstate__(self):
        return {**self.__dict__, "_open": {}}


PARTS_DIR = "_parts"  # one small JSON per written file: its digest, taken by the rank that wrote it


def part_entry(path: Path, shard: str) -> dict:
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["id_str"]).column("id_str")
    return {"name": path.name, "shard": shard, "rows": len(ids), "first_id": ids[0].as_py() if len(ids) else None,
            "last_id": ids[-1].as_py() if len(ids) else None, "sha256": sha256_file(path),
            "bytes": path.stat().st_size}


def record_part(out: Path, shard: str) -> None:
    """The digest of the file just written, while it is in the page cache; the manifest step reads
    these instead of hashing every file again on one rank."""
    (out / PARTS_DIR).mkdir(exist_ok=True)
    entry = part_entry(out / part_name(shard), shard)
    atomic_write_text(out / PARTS_DIR / (entry["name"] + ".json"), json.dumps(entry))


def recorded_entry(out: Path, shard: str) -> dict:
    """The part's recorded entry when it still describes the file (same size), else a fresh one
    (a file from before records, or one replaced since)."""
    path = out / part_name(shard)
    record = out / PARTS_DIR / (path.name + ".json")
    if record.is_file():
        entry = json.loads(record.read_text())
        if entry.get("bytes") == path.stat().st_size and entry.get("shard") == shard:
            return entry
    return part_entry(path, shard)


def write_manifest(out: Path, what: str, source: dict, names: list[str]) -> dict:
    """Check each file against its shard's size and every id's uniqueness; write the manifest."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sizes = {s["name"]: int(s["n_samples"]) for s in source["shards"]}
    outputs, chunks = [], []
    for name in names:
        path = out / part_name(name)
        entry = recorded_entry(out, name)
        if entry["rows"] != sizes[name]:
            raise SurveyError(f"{path}: {entry['rows']} rows, shard {name} holds {sizes[name]}; delete the file "
                              "and re-run")
        outputs.append(entry)
        chunks += pq.read_table(path, columns=["id_str"]).column("id_str").chunks
    ids = pa.chunked_array(chunks, pa.string())
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise SurveyError(f"{out}: id {dup!r} is in more than one output file; the shard set repeats it "
                          "(run `hybridssl verify` on it)")
    doc = {"format": FORMAT, "command": what, "run": json.loads((out / RUN_FILE).read_text()),
           "n_rows": len(ids), "outputs": outputs,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    atomic_write_text(out / OUT_MANIFEST, json.dumps(doc, indent=1))
    return doc


def read_survey_manifest(folder: Path, command: str, verify: bool = True) -> dict:
    """The folder's manifest; with ``verify`` every file is checked against its sha256."""
    path = folder / OUT_MANIFEST
    if not path.is_file():
        raise SurveyError(f"{folder}: no {OUT_MANIFEST}: the run writing it has not finished (re-run the same "
                          f"`hybridssl {command} ... --out {folder}/` to complete it), or it is not such a folder")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT or doc.get("command") != command:
        raise SurveyError(f"{path}: not written by `hybridssl {command} --out DIR/`")
    for o in doc["outputs"]:
        part = folder / str(o["name"])
        if Path(o["name"]).name != o["name"] or not part.is_file() or (verify and sha256_file(part) != o["sha256"]):
            raise_changed(part, command)
    return doc


def raise_changed(part: Path, command: str):
    raise SurveyError(f"{part}: missing or changed since {OUT_MANIFEST} was written (sha256); delete it "
                      f"and {OUT_MANIFEST}, then re-run `hybridssl {command}`")
