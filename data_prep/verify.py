"""``hybridssl verify SHARD_DIR``: check a shard set against its manifest; name every bad shard.

Per shard: the file exists, its size and sha256 match the manifest, the tar reads to its end,
its sample count matches, and every sample has a decodable ``image_size`` RGB image (or float16
``(in_chans, image_size, image_size)`` ``image.npy``), a
``meta.json`` whose ``id_str`` is the decoded key, and (labelled sets) a finite, non-negative
``votes.npy`` of ``n_answers``. Across shards: no id twice. Exit 1 if any shard is bad.
"""
from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridssl.cli import progress as progress_bar
from hybridssl.storage.images import decode_image
from hybridssl.storage.shards import (MANIFEST, decode_array, decode_key, decode_votes, manifest_in_chans,
                              read_manifest, sha256_file, shard_entry_problem)

_MAX_SAMPLE_PROBLEMS = 3  # per shard; the count says how many more


@dataclass
class VerifyReport:
    n_shards: int = 0
    n_samples: int = 0
    bad: dict[str, list[str]] = field(default_factory=dict)   # shard name -> problems
    notes: list[str] = field(default_factory=list)            # not failures: e.g. unfinished run


def _sample_problems(key: str, files: dict, m: dict) -> list[str]:
    out = []
    try:
        id_str = decode_key(key)
    except (ValueError, UnicodeDecodeError):
        return [f"{key}: key is not an encode_key() escape"]
    images = [k for k in files if k.startswith("image.")]
    fmt = m.get("image_format")
    if len(images) != 1 or (fmt and images[0] != f"image.{fmt}"):
        out.append(f"{id_str}: image entries {images}, expected one image.{fmt or 'jpg|png'}")
    for k in images:
        try:
            if k == "image.npy":  # float16 bands (prepare --image-format npy)
                a = decode_array(files[k])
                want = (manifest_in_chans(m), m["image_size"], m["image_size"])
                if a.dtype != np.float16 or a.shape != want:
                    out.append(f"{id_str}: {k} is {a.dtype} {a.shape}, expected float16 {want}")
                continue
            shape = decode_image(files[k]).shape
            if shape != (m["image_size"], m["image_size"], 3):
                out.append(f"{id_str}: {k} is {shape}, expected {m['image_size']}x{m['image_size']} RGB")
        except (OSError, ValueError, SyntaxError) as e:
            out.append(f"{id_str}: {k} does not decode ({e})")
    if m["labelled"]:
        try:
            v = decode_votes(files["votes.npy"])
            n = m.get("n_answers", v.shape[-1])
            if v.shape != (n,) or v.dtype != np.float32 or not np.isfinite(v).all() or (v < 0).any():
                out.append(f"{id_str}: votes.npy is {v.dtype}{v.shape}, expected finite non-negative float32 ({n},)")
        except KeyError:
            out.append(f"{id_str}: no votes.npy in a labelled set")
        except (ValueError, OSError, EOFError) as e:
            out.append(f"{id_str}: votes.npy does not decode ({e})")
    elif "votes.npy" in files:
        out.append(f"{id_str}: votes.npy in an unlabelled set")
    try:
        meta = json.loads(files["meta.json"])
        if meta.get("id_str") != id_str:
            out.append(f"{id_str}: meta.json id_str is {meta.get('id_str')!r}")
    except KeyError:
        out.append(f"{id_str}: no meta.json")
    except (ValueError, UnicodeDecodeError) as e:
        out.append(f"{id_str}: meta.json is not JSON ({e})")
    return out


def _read_samples(path: Path) -> dict[str, dict]:
    """key -> {extension: bytes}, split as webdataset splits member names (at the first dot);
    raises tarfile/OS errors on a truncated or broken tar. (tarfile directly: importing
    webdataset imports torch, seconds per process, and verify needs none of it.)"""
    samples: dict[str, dict] = {}
    with tarfile.open(path, "r|") as tf:
        for member in tf:
            if not member.isfile():
                raise ValueError(f"{member.name} is not a regular file")
            key, _, ext = member.name.partition(".")
            if ext in samples.setdefault(key, {}):
                raise ValueError(f"{member.name} appears twice")
            data = tf.extractfile(member).read()
            if len(data) != member.size:
                raise EOFError(f"{member.name} is cut short")
            samples[key][ext] = data
    return samples


def check_shard(path: Path, entry: dict, m: dict) -> tuple[list[str], list[str]]:
    """Problems of one shard, and the ids it holds."""
    if not path.is_file():
        return ["missing file"], []
    problems = []
    size = path.stat().st_size
    if size != entry.get("bytes", size):
        problems.append(f"{'truncated: ' if size < entry['bytes'] else ''}{size} bytes, manifest says {entry['bytes']}")
    if sha256_file(path) != entry.get("sha256"):
        problems.append("sha256 does not match the manifest (changed or corrupt file)")
    try:
        samples = _read_samples(path)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        return problems + [f"unreadable tar ({type(e).__name__}: {e})"], []
    if len(samples) != entry.get("n_samples"):
        problems.append(f"{len(samples)} samples, manifest says {entry.get('n_samples')}")
    sample_problems = [p for key, files in samples.items() for p in _sample_problems(key, files, m)]
    problems += sample_problems[:_MAX_SAMPLE_PROBLEMS]
    if len(sample_problems) > _MAX_SAMPLE_PROBLEMS:
        problems.append(f"... {len(sample_problems) - _MAX_SAMPLE_PROBLEMS} more sample problems")
    ids = []
    for key in samples:
        try:
            ids.append(decode_key(key))
        except (ValueError, UnicodeDecodeError):
            pass  # already reported per sample
    return problems, ids


def verify(shard_dir: str | Path, progress: bool = True) -> VerifyReport:
    shard_dir = Path(shard_dir)
    m = read_manifest(shard_dir)
    report = VerifyReport(n_shards=len(m["shards"]))
    owner: dict[str, str] = {}
    names_seen: set = set()
    for entry in progress_bar(m["shards"], desc="verify", unit="shard", enabled=progress):
        name = str(entry.get("name"))
        problem = shard_entry_problem(name, names_seen)
        if problem:  # never open a path the manifest could point anywhere, nor a shard twice
            report.bad.setdefault(name, []).append(problem)
            continue
        problems, ids = check_shard(shard_dir / name, entry, m)
        for i in ids:
            if i in owner:
                problems.append(f"id {i!r} also in {owner[i]}")
            owner.setdefault(i, name)
        report.n_samples += len(ids)
        if problems:
            report.bad[name] = problems
    listed = sum(e.get("n_samples", 0) for e in m["shards"])
    if m["n_samples"] != listed:
        report.bad[MANIFEST] = [f"n_samples is {m['n_samples']}, its shards hold {listed}"]
    on_disk = {p.name for p in shard_dir.glob("shard-*.tar")}
    unlisted = sorted(on_disk - {str(e.get("name")) for e in m["shards"]})
    if unlisted:
        report.notes.append(f"{len(unlisted)} shard file(s) not in the manifest (an unfinished prepare? "
                            f"re-run it): {', '.join(unlisted[:5])}")
    if m.get("complete") is False:
        report.notes.append(f"manifest lists {len(m['shards'])} of {m.get('n_shards_planned', '?')} planned "
                            "shards: prepare did not finish; re-run it to complete")
    return report


def add_arguments(parser) -> None:
    parser.add_argument("shard_dir", help="directory written by `hybridssl prepare` (has manifest.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print only problems and the summary")


def run(args) -> int:
    report = verify(args.shard_dir, progress=not args.quiet)
    for name, problems in report.bad.items():
        print(f"BAD {name}: " + "; ".join(problems))
    for note in report.notes:
        print(f"note: {note}")
    print(f"verify: {report.n_shards} shards, {report.n_samples} samples checked, {len(report.bad)} bad"
          f" -> {args.shard_dir}")
    return 1 if report.bad else 0
