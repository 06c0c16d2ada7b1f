"""``hybridssl anomalies --embeddings FILE --labelled-interesting IDS``: personalised anomaly search.

As in the Galaxy Zoo foundation-model work: a user's few interesting examples train a small
model on the frozen representation, and the model ranks every other galaxy. The model is a
class-balanced logistic regression (scikit-learn) on the unit-norm embeddings. Negatives are
the user's boring examples, or by default a random sample of the other galaxies presumed
normal: for rare targets (a few per cent or less) that sample is almost all normal, and the
few targets drawn into it barely move a regularised linear model, so they still rank high
(``tests/apply/test_anomalies.py`` checks this). The sample is ranked like every other
unlabelled galaxy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.apply.embeddings import read_embeddings
from hybridssl.storage.atomic import atomic_write_text
from hybridssl.cli import int_at_least

REPORT_KS = (10, 50, 100)


class AnomalyError(ValueError):
    """The labelled examples cannot train a ranking model (unreadable, overlapping, too few)."""


def read_ids(spec: str, option: str) -> list[str]:
    """Ids from a comma list, a text file (one per line, ``#`` comments) or a CSV with ``id_str``."""
    path = Path(spec)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path, dtype=str)
            if "id_str" not in df.columns:
                raise AnomalyError(f"{option} {path}: no 'id_str' column (columns: {', '.join(df.columns)})")
            ids = df["id_str"].dropna().str.strip().tolist()
        else:
            ids = [s for s in (line.strip() for line in path.read_text().splitlines()) if not s.startswith("#")]
    elif path.suffix.lower() in (".csv", ".txt"):
        raise AnomalyError(f"{option}: no such file {path}")
    else:
        ids = [s.strip() for s in spec.split(",")]
    ids = list(dict.fromkeys(i for i in ids if i))  # de-duplicated, in order
    if not ids:
        raise AnomalyError(f"{option}: no ids in {spec!r}")
    return ids


def _fit(x: np.ndarray, pos: np.ndarray, neg: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    rows = np.r_[pos, neg]
    order = np.argsort(rows, kind="stable")  # increasing rows: a memory-mapped read in file order
    picked = np.empty((len(rows), x.shape[1]), np.float32)
    picked[order] = x[rows[order]]
    return LogisticRegression(class_weight="balanced", max_iter=1000).fit(picked, y)


SCORE_CHUNK = 1 << 16  # rows scored at a time: a memory-mapped folder is never read whole


def presumed_normal(n: int, pos: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` distinct random rows of ``range(n)`` other than ``pos``, without an array of all n."""
    taken = np.unique(pos)
    size = min(size, n - len(taken))
    if size < 1:
        raise AnomalyError("need at least 1 other galaxy as a presumed-normal example (--negatives)")
    draw = np.random.default_rng(seed).choice(n - len(taken), size, replace=False)
    # the i-th row not in ``taken``: shift each draw past the taken rows at or before it
    return np.sort(draw + np.searchsorted(taken - np.arange(len(taken)), draw, "right"))


def interest_scores(x: np.ndarray, pos: np.ndarray, boring: np.ndarray | None, n_presumed: int,
                    seed: int = 0) -> np.ndarray:
    """P(interesting) of every row of ``x``, from ``boring`` negatives or ``n_presumed`` random others."""
    neg = boring if boring is not None else presumed_normal(len(x), pos, n_presumed, seed)
    model = _fit(x, pos, neg)
    return np.concatenate([model.predict_proba(x[s:s + SCORE_CHUNK])[:, 1] for s in range(0, len(x), SCORE_CHUNK)])


def precision_at_k(truth: np.ndarray, ks=REPORT_KS) -> dict[int, float]:
    """Fraction of true targets among the first k of a ranking, for each k it is long enough for."""
    return {k: float(truth[:k].mean()) for k in ks if k <= len(truth)}


def _truth(column: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        raise AnomalyError(f"--report-column {name}: values must be 0/1 or boolean, "
                           f"found {column[bad].iloc[0]!r}")
    return (values.fillna(0) > 0).to_numpy(copy=True)  # missing counts as not a target


def add_arguments(parser) -> None:
    ids = "a comma-separated list, a text file (one id per line) or a CSV with an id_str column"
    parser.add_argument("--embeddings", required=True, metavar="FILE",
                        help="FILE.parquet or FILE.npy from `hybridssl embed`")
    parser.add_argument("--labelled-interesting", required=True, metavar="IDS",
                        help=f"galaxies like the ones you want (at least 2): {ids}")
    parser.add_argument("--labelled-boring", metavar="IDS",
                        help=f"galaxies you do not want: {ids}. Default: a random sample of the other galaxies "
                             "(--negatives), presumed normal; safe when the targets are rare")
    parser.add_argument("--negatives", type=int_at_least(1), default=5000, metavar="N", help="size of that presumed-normal sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of the presumed-normal sample")
    parser.add_argument("--top", type=int_at_least(1), default=50, metavar="N", help="galaxies to print and put in the montage")
    parser.add_argument("--out", metavar="CSV",
                        help="write the whole ranking (rank, id_str, score, meta columns) to this CSV")
    parser.add_argument("--montage", metavar="PNG", help="save a PNG of the top-ranked galaxies")
    parser.add_argument("--shards", metavar="DIR",
                        help="shard set to take montage images from (default: the one embedded)")
    parser.add_argument("--report-column", metavar="COL",
                        help="a 0/1 meta column of the embeddings (e.g. ring): print precision@10/50/100 "
                             "of the ranking against its base rate")


def run(args) -> int:
    emb = read_embeddings(args.embeddings)
    if args.report_column and args.report_column not in emb.meta_columns:
        raise AnomalyError(f"--report-column {args.report_column}: not a column of {args.embeddings} "
                           f"(columns: {', '.join(c for c in emb.meta_columns if c != 'id_str')})")
    pos = emb.rows_of(read_ids(args.labelled_interesting, "--labelled-interesting"), "interesting id")
    if len(pos) < 2:
        raise AnomalyError(f"--labelled-interesting: need at least 2 galaxies to learn from, got {len(pos)}")
    boring = None
    if args.labelled_boring:
        boring = emb.rows_of(read_ids(args.labelled_boring, "--labelled-boring"), "boring id")
        both = sorted(set(pos) & set(boring))
        if both:
            raise AnomalyError(f"labelled both interesting and boring: {', '.join(emb.ids[r] for r in both[:10])}")
    scores = interest_scores(emb.x, pos, boring, args.negatives, args.seed)
    labelled = np.r_[pos, boring if boring is not None else []].astype(np.int64)
    scores[labelled] = np.nan  # not ranked; NaN sorts last and is cut below
    n_ranked = len(scores) - len(np.unique(labelled))
    if n_ranked == 0:
        raise AnomalyError("every galaxy is labelled: nothing left to rank")
    # the whole ranking only when it is written out; the printout needs the top rows only
    head = n_ranked if args.out else min(n_ranked, max(args.top, *REPORT_KS))
    key = -np.nan_to_num(scores, nan=-1.0)
    best = np.sort(np.argpartition(key, head - 1)[:head]) if head < len(scores) else np.arange(len(scores))
    order = best[np.argsort(key[best], kind="stable")][:head]  # ties in row order, as a full stable sort
    ranked = pd.concat([pd.DataFrame({"rank": np.arange(1, len(order) + 1), "score": scores[order]}),
                        emb.meta_rows(order)], axis=1)[["rank", "id_str", "score", *(
                            c for c in emb.meta_columns if c != "id_str")]]
    shown = ["rank", "id_str", "score"] + ([args.report_column] if args.report_column else [])
    print(ranked[shown].head(args.top).to_string(index=False, float_format="%.4f"))
    n_neg = len(boring) if boring is not None else min(args.negatives, len(emb.ids) - len(pos))
    print(f"({len(pos)} interesting and {n_neg} {'boring' if boring is not None else 'presumed-normal'} "
          f"examples; {n_ranked} galaxies ranked)")
    if args.report_column:
        truth = _truth(ranked[args.report_column], args.report_column)
        every = _truth(emb.column(args.report_column), args.report_column)
        every[labelled] = False
        base = every.sum() / n_ranked
        print(f"{args.report_column}: base rate {base:.3f} ({every.sum()} of {n_ranked} ranked galaxies)")
        for k, p in precision_at_k(truth).items():
            print(f"  precision@{k:<3d} {p:.3f}" + (f"  ({p / base:.1f}x base rate)" if base > 0 else ""))
    if args.out:
        atomic_write_text(args.out, ranked.to_csv(index=False))
        print(f"ranking -> {args.out}")
    if args.montage:
        from hybridssl.apply.montage import galaxy_images, save_montage

        top = ranked.head(args.top)
        titles = [f"#{r} score {s:.3f}\n{i}" for r, s, i in zip(top["rank"], top["score"], top["id_str"])]
        save_montage(args.montage, galaxy_images(emb, order[:len(top)], args.shards), titles,
                     suptitle=f"top {len(top)} of {n_ranked} galaxies ranked by a model of your examples")
        print(f"montage -> {args.montage}")
    return 0
