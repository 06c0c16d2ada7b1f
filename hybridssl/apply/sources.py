"""Where galaxies to apply a model to come from: a shard set (``--shards``) or a catalog
(``--catalog``, images read and resized as ``prepare`` would). Both give the evaluation
reader's sample dicts (``image`` uint8 (3, H, W), ``votes`` or None, ``id_str``, ...)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from hybridssl.cli import int_at_least
from hybridssl.schema import Schema


class SourceError(ValueError):
    """The galaxies asked for cannot be read (none left, wrong image size, ...)."""


class CatalogImages(torch.utils.data.Dataset):
    """The rows of a catalog that pass ``prepare``'s checks; votes when it has the schema's columns."""

    def __init__(self, catalog: str | os.PathLike, schema: Schema, image_size: int,
                 id_column: str = "id_str", path_column: str = "file_loc"):
        from hybridssl.storage.catalog import find_vote_columns, load_rows, read_catalog

        columns = read_catalog(catalog, (id_column, path_column)).columns
        labelled = bool(find_vote_columns(columns, schema).mapping)
        self.rows, self.rejected, _ = load_rows(catalog, schema, id_column=id_column,
                                                path_column=path_column, labelled=labelled)
        self.image_size, self.labelled, self.n_answers = image_size, labelled, schema.n_answers

    def __len__(self) -> int:
        return len(self.rows.ids)

    def __getitem__(self, i: int) -> dict:
        from hybridssl.storage.images import load_image, resize_square

        img = resize_square(load_image(self.rows.paths[i]), self.image_size)
        votes = None if self.rows.votes is None else torch.from_numpy(self.rows.votes[i])
        return {"image": torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous(), "votes": votes,
                "has_votes": self.labelled, "id_str": self.rows.ids[i], "campaign": self.rows.campaigns[i],
                "meta": {"id_str": self.rows.ids[i], "path": self.rows.paths[i]}}


def add_source_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    src = parser.add_mutually_exclusive_group(required=required)
    src.add_argument("--shards", help="a shard set written by `hybridssl prepare`: a folder, or a URL "
                     "(s3://, gs://, https://, file://) read through fsspec with --out DIR/")
    src.add_argument("--catalog", help="a catalog (parquet/CSV) of image paths, read like `prepare` does")
    parser.add_argument("--id-column", default="id_str", help="catalog id column (with --catalog)")
    parser.add_argument("--path-column", default="file_loc", help="catalog image-path column (with --catalog)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=128, help="galaxies per forward pass")
    parser.add_argument("--workers", type=workers_arg, default="auto",
                        help="data-loading processes (auto: up to 8 with a GPU, 0 on CPU, where the "
                             "model needs the cores)")
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="torch device (auto: cuda when there is a GPU, else cpu; cpu, cuda, cuda:1, ...)")


def device_arg(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def workers_arg(value: str) -> int:
    if value == "auto":
        return min(8, max(1, len(os.sched_getaffinity(0)) - 1)) if torch.cuda.is_available() else 0
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or auto, got {n}")
    return n


def check_shards(ds, where, schema: Schema, image_size: int, in_chans: int = 3, bands: dict | None = None):
    """``ds`` (an IndexedShards of ``where``) when its images and votes fit the model (``bands``:
    its config.json band normalisation, None for 8-bit RGB)."""
    from hybridssl.data.shardsets import band_kind
    from hybridssl.storage.shards import ShardError

    model_kind, data_kind = band_kind(in_chans, bands), band_kind(ds.in_chans, ds.bands)
    if data_kind != model_kind:
        raise ShardError(f"{where}: images are {data_kind}, the model takes {model_kind}; prepare them as the "
                         "model's data was (its config.json 'in_chans' and 'bands')")
    if ds.image_size != image_size:
        raise ShardError(f"{where}: images are {ds.image_size} px, the model takes {image_size} px; "
                         f"prepare the catalog with --image-size {image_size} or use --catalog")
    if ds.labelled and ds.n_answers != schema.n_answers:
        raise ShardError(f"{where}: votes have {ds.n_answers} answers, schema {schema.name} "
                         f"has {schema.n_answers}")
    return ds


def open_source(args, schema: Schema, image_size: int, in_chans: int, bands: dict | None) -> torch.utils.data.Dataset:
    """The dataset named by ``--shards`` or ``--catalog``, at the model's ``image_size``, refused
    when its images are not the kind the model takes (``in_chans`` bands, float with the model's
    stretch (``bands``), or 8-bit RGB)."""
    from hybridssl.data import IndexedShards
    from hybridssl.data.shardsets import band_kind
    from hybridssl.storage.shards import is_local

    model_kind = band_kind(in_chans, bands)
    if args.shards:
        if not is_local(args.shards):
            raise SourceError(f"--shards {args.shards}: a shard set behind a URL is read shard by shard; "
                              "give --out a folder (--out DIR/) for one output file per shard")
        return check_shards(IndexedShards(args.shards), args.shards, schema, image_size, in_chans, bands)
    if bands:
        raise SourceError(f"--catalog reads images as 8-bit RGB; the model takes {model_kind}: prepare the "
                          "catalog with `hybridssl prepare --image-format npy` and pass --shards")
    return CatalogImages(Path(args.catalog), schema, image_size, args.id_column, args.path_column)
