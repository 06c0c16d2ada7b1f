"""Outputs never destroy inputs: checked for every command before anything is opened for writing.

An output path is refused when it is one of the command's inputs, lies inside an input folder
read as a whole (a shard set, an export, a per-shard output; not a pretraining run folder), or
is an existing file that a hybridssl command did not write: a catalog, a hand-picked id list or
a shard set's ``manifest.json`` is never replaced by a prediction table. Files written by
hybridssl carry a mark the check reads back (parquet schema metadata, a PNG text chunk, the
ranking tables' ``rank,id_str`` header).
"""
from __future__ import annotations

import os
from pathlib import Path

MARK = "hybridssl"  # parquet schema-metadata key and PNG "Software" text of every file we write
OUTPUT_ARGS = ("out", "montage")
INPUT_ARGS = ("model", "shards", "catalog", "embeddings", "labelled_interesting", "labelled_boring",
              "checkpoint", "config")
# commands whose --out is a folder they manage themselves (their own "is a file" errors)
FOLDER_OUTPUTS = {"prepare", "export", "finetune", "calibrate", "pretrain", "benchmark"}


class OutputPathError(ValueError):
    """An output path would overwrite or land inside one of the command's inputs."""


def _resolved(path) -> Path | None:
    if path is None or "://" in str(path):  # URLs are read, never written, here
        return None
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def check_outputs(outputs: dict, inputs: dict, folder_outputs: bool = False) -> None:
    """Refuse any output of ``outputs`` (flag -> path) that would destroy one of ``inputs``
    (flag -> path). ``folder_outputs``: the outputs are folders the command manages, so an
    existing file there is left to the command's own error."""
    ins = {flag: (_resolved(p), p) for flag, p in inputs.items() if _resolved(p) is not None}
    for flag, given in outputs.items():
        out = _resolved(given)
        if out is None:
            continue
        real = Path(os.path.realpath(out))
        for in_flag, (path, text) in ins.items():
            in_real = Path(os.path.realpath(path))
            if real == in_real:
                raise OutputPathError(f"{flag} {given}: is the input {in_flag} {text}; "
                                      "choose another output path")
            if _read_whole(in_real) and real.is_relative_to(in_real):
                raise OutputPathError(f"{flag} {given}: lies inside the input {in_flag} {text}; "
                                      "write outputs outside input folders")
        if out.is_file() and not folder_outputs and not str(given).endswith(os.sep):
            if not written_by_us(out):
                raise OutputPathError(f"{flag} {given}: is a file hybridssl did not write; refusing to replace "
                                      f"it (remove it or choose another path)")
        elif out.exists() and not out.is_file() and not out.is_dir():
            raise OutputPathError(f"{flag} {given}: exists and is not a regular file")


def _read_whole(folder: Path) -> bool:
    """A folder a command reads as a whole (a shard set, an export, a per-shard output), where a
    new file would change what it holds; a pretraining run folder may hold its own exports."""
    return folder.is_dir() and any((folder / f).exists() for f in ("manifest.json", "config.json", "_manifest.json"))


def written_by_us(path: Path) -> bool:
    """True for a file a hybridssl command wrote (predictions, embeddings, rankings, montages)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if not head:  # an empty file holds nothing to lose
        return True
    suffix = path.suffix.lower()
    if suffix == ".parquet" and head.startswith(b"PAR1"):
        import pyarrow.parquet as pq
        try:
            return MARK.encode() in (pq.read_schema(path).metadata or {})
        except Exception:  # not readable as parquet: not ours
            return False
    if suffix == ".npy" and head.startswith(b"\x93NUMPY"):
        return path.with_suffix(".ids.json").is_file()  # embed's sidecar
    if suffix == ".csv":
        return head.startswith(b"rank,id_str,")  # anomalies, similar, acquire
    if suffix == ".png" and head.startswith(b"\x89PNG"):
        from PIL import Image
        try:
            with Image.open(path) as im:
                return str(im.info.get("Software", "")).startswith(MARK)
        except Exception:
            return False
    return False


def check_command(command: str, args) -> None:
    """:func:`check_outputs` for a parsed ``hybridssl COMMAND`` command line (flags by attribute)."""
    def flags(names):
        return {"--" + n.replace("_", "-") if n != "checkpoint" else n: getattr(args, n)
                for n in names if getattr(args, n, None) is not None}
    inputs = flags(INPUT_ARGS)
    if "--config" in inputs and not Path(str(inputs["--config"])).exists():
        del inputs["--config"]  # a configs/ name, not a path
    check_outputs(flags(OUTPUT_ARGS), inputs, folder_outputs=command in FOLDER_OUTPUTS)
