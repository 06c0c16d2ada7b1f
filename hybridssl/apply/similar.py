"""``hybridssl similar --embeddings FILE --query ID``: the galaxies nearest a query in embedding space.

Embeddings are unit vectors, so cosine similarity is their inner product. Up to
``--exact-max`` galaxies the search is exact: chunked matrix products in numpy (one query
against a million 320-d vectors took 0.08 s on a 2-core CPU). Beyond that, or with
``--ann``, it uses FAISS (``faiss-cpu``): an inner-product HNSW graph index. FAISS is the
standard library for billion-scale vector search, with CPU wheels for Linux, macOS and
Windows; HNSW needs no training step and answers a query by visiting a few thousand vectors
instead of all of them. Building the graph takes minutes at millions of galaxies, so it is
saved beside the embeddings file (``FILE.hnsw.faiss``) and reused while it is newer than that
file. faiss is imported only on this path (``pip install faiss-cpu``). An ``embed --out DIR/`` folder
is memory-mapped (``hybridssl.apply.folder_embeddings``): both searches read it a chunk at a time.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.apply.embeddings import EmbeddingsError, read_embeddings
from hybridssl.storage.atomic import DiskWriteError, atomic_path, atomic_write_text
from hybridssl.cli import int_at_least

HNSW_M = 32  # graph degree: FAISS's usual choice for recall ~0.95+ at modest memory
ADD_CHUNK = 1 << 16  # rows copied into the index at a time


class SearchError(ValueError):
    """The search cannot run as asked (e.g. FAISS missing)."""


def exact_search(x: np.ndarray, q: np.ndarray, k: int, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products of each query row against ``x``: (sims, rows), both (m, k), best first."""
    k = min(k, len(x))
    best_s = np.empty((len(q), 0), np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(x), chunk):  # bounded memory: never the full (m, n) product
        s = q @ x[start:start + chunk].T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)], axis=1)
        keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise SearchError("approximate search needs FAISS: pip install faiss-cpu (or the package's [ann] extra), "
                          "or raise --exact-max to search exactly") from None
    return faiss


def hnsw_index(x: np.ndarray, cache: Path | None = None, newer_than: Path | None = None):
    """An inner-product HNSW index of ``x``: read from ``cache`` when it is newer than
    ``newer_than`` and matches ``x``'s shape, else built (and saved to ``cache``)."""
    faiss = _faiss()
    if cache is not None and cache.is_file() and (
            newer_than is None or cache.stat().st_mtime_ns >= newer_than.stat().st_mtime_ns):
        index = faiss.read_index(str(cache))
        if (index.ntotal, index.d) == x.shape:
            return index
    index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    for start in range(0, len(x), ADD_CHUNK):  # from a memory-mapped folder: one chunk in memory at a time
        index.add(np.ascontiguousarray(x[start:start + ADD_CHUNK], dtype=np.float32))
    if cache is not None:
        try:
            with atomic_path(cache) as tmp:
                faiss.write_index(index, str(tmp))
        except DiskWriteError as e:  # a read-only directory only costs the next query a rebuild
            print(f"warning: index not cached ({e})", file=sys.stderr)
    return index


def ann_search(index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`exact_search`; rows are -1 where the graph found fewer than ``k``."""
    index.hnsw.efSearch = max(64, 2 * k)  # candidates kept while searching: recall vs time
    sims, rows = index.search(np.ascontiguousarray(q, dtype=np.float32), k)
    return sims, rows.astype(np.int64)


def add_arguments(parser) -> None:
    parser.add_argument("--embeddings", required=True, metavar="FILE",
                        help="FILE.parquet or FILE.npy from `hybridssl embed`")
    parser.add_argument("--query", required=True, metavar="ID", help="id_str of the query galaxy")
    parser.add_argument("--k", type=int_at_least(1), default=20, help="neighbours to list (the query itself comes first, "
                                                          "as rank 0)")
    parser.add_argument("--out", metavar="CSV",
                        help="also write the table (rank, id_str, similarity, meta columns) to this CSV")
    parser.add_argument("--montage", metavar="PNG", help="save a PNG of the query and its neighbours")
    parser.add_argument("--shards", metavar="DIR",
                        help="shard set to take montage images from (default: the one embedded)")
    parser.add_argument("--exact-max", type=int_at_least(0), default=200_000, metavar="N",
                        help="search exactly up to this many galaxies, with FAISS HNSW above (default 200000)")
    parser.add_argument("--ann", action="store_true", help="use the FAISS HNSW index whatever the size")


def neighbours(emb, row: int, k: int, index=None) -> tuple[list[int], list[float]]:
    """Rows and similarities of the query (first, as rank 0) and its ``k`` nearest others;
    through the FAISS ``index`` when given, else exact."""
    q = emb.x[row:row + 1]
    sims, rows = ann_search(index, q, k + 1) if index is not None else exact_search(emb.x, q, k + 1)
    # the query may not come first (exact duplicates tie with it): place it there explicitly
    others = [(int(r), float(s)) for r, s in zip(rows[0], sims[0]) if r != row and r >= 0][:k]
    return [row] + [r for r, _ in others], [float(q[0] @ q[0])] + [s for _, s in others]


def run(args) -> int:
    path = Path(args.embeddings)
    emb = read_embeddings(path)
    row = int(emb.rows_of([args.query], "query id")[0])
    if len(emb.ids) < 2:
        raise EmbeddingsError(f"{path}: one galaxy, no neighbours to find")
    ann = args.ann or len(emb.ids) > args.exact_max
    index = hnsw_index(emb.x, path.with_name(path.name + ".hnsw.faiss"), path) if ann else None
    rows, sims = neighbours(emb, row, min(args.k, len(emb.ids) - 1), index)
    table = pd.concat([pd.DataFrame({"rank": range(len(rows)), "id_str": [emb.ids[r] for r in rows],
                                     "similarity": sims}),
                       emb.meta_rows(rows).drop(columns="id_str")], axis=1)
    print(table[["rank", "id_str", "similarity"]].to_string(index=False, float_format="%.4f"))
    print(f"(rank 0 is the query; cosine similarity, {'FAISS HNSW' if ann else 'exact'} search over "
          f"{len(emb.ids)} galaxies)")
    if args.out:
        atomic_write_text(args.out, table.to_csv(index=False))
        print(f"table -> {args.out}")
    if args.montage:
        from hybridssl.apply.montage import galaxy_images, save_montage

        titles = [f"query\n{args.query}"] + [f"#{r} sim {s:.3f}\n{emb.ids[i]}"
                                             for r, (i, s) in enumerate(zip(rows[1:], sims[1:]), 1)]
        save_montage(args.montage, galaxy_images(emb, rows, args.shards), titles,
                     suptitle=f"{args.query} and its {len(rows) - 1} nearest galaxies")
        print(f"montage -> {args.montage}")
    return 0
