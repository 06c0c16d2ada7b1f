"""Read a galaxy catalog (parquet or CSV) and check its ids, image paths and vote counts.

Vote columns are found in one of two namings:

- galaxy-datasets / GZ-Evo: ``{question}-{campaign}_{answer}`` count columns, exactly the
  schema's columns (``bar-dr5_strong``);
- a published release table read with ``campaign=``: GZ DECaLS DR1/2, DR5, DR8 use
  ``{question}_{answer}`` counts (``bar_strong``) and GZ2 (Hart et al. 2016) uses
  ``t03_bar_a06_bar_count``; both map onto ``{question}-{campaign}_{answer}``.

Sibling columns of a release (``_fraction``, ``_debiased``, ``_total-votes``, GZ2's
``_weight``/``_flag``...) are not votes and are ignored, as are GZ2's odd-feature answers
(task 08), which GZ-Evo v0.1 does not include. A column that looks like a vote column but
matches no schema answer is *unknown*: rows with votes in it are rejected, naming it.

Votes are counts. A question whose answers are all missing (NaN) in a row was not asked of that
galaxy and gets zero votes; a missing count beside real ones, or a negative, non-integer,
infinite or non-numeric count rejects the row, as does one above 2**24 (votes are stored as
float32, which holds whole counts exactly only up to there and overflows to inf past ~3.4e38).

``keep_columns`` values go to JSON: dates and times as ISO 8601 text, list and array cells as
JSON lists; a value JSON cannot hold (bytes, ...) is a :class:`CatalogError` naming the column.

Rows are numbered from 0 in catalog order (``row`` in ``rejected.csv``). A rejected row is
reported with its id and reason; a catalog-wide problem raises :class:`CatalogError`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.schema import Schema

SIBLING_SUFFIXES = ("_fraction", "_debiased", "_concentration")
SIBLING_NAMES = ("total-votes", "proportion_volunteers_asked")
CAMPAIGN_COLUMN = "campaign"
ROW_BLOCK = 50_000  # rows checked at a time
MAX_VOTE = 2 ** 24  # the largest count float32 (votes.npy) stores exactly

# GZ2 Hart+16 (task, answer) codes -> (question stem, answer) of the gz2 campaign in GZ-Evo.
GZ2_HART16 = {
    ("t01", "a01"): ("smooth-or-featured", "smooth"),
    ("t01", "a02"): ("smooth-or-featured", "featured-or-disk"),
    ("t01", "a03"): ("smooth-or-featured", "artifact"),
    ("t02", "a04"): ("disk-edge-on", "yes"), ("t02", "a05"): ("disk-edge-on", "no"),
    ("t03", "a06"): ("bar", "yes"), ("t03", "a07"): ("bar", "no"),
    ("t04", "a08"): ("has-spiral-arms", "yes"), ("t04", "a09"): ("has-spiral-arms", "no"),
    ("t05", "a10"): ("bulge-size", "no"), ("t05", "a11"): ("bulge-size", "just-noticeable"),
    ("t05", "a12"): ("bulge-size", "obvious"), ("t05", "a13"): ("bulge-size", "dominant"),
    ("t06", "a14"): ("something-odd", "yes"), ("t06", "a15"): ("something-odd", "no"),
    ("t07", "a16"): ("how-rounded", "round"), ("t07", "a17"): ("how-rounded", "in-between"),
    ("t07", "a18"): ("how-rounded", "cigar"),
    ("t09", "a25"): ("bulge-shape", "round"), ("t09", "a26"): ("bulge-shape", "boxy"),
    ("t09", "a27"): ("bulge-shape", "no-bulge"),
    ("t10", "a28"): ("spiral-winding", "tight"), ("t10", "a29"): ("spiral-winding", "medium"),
    ("t10", "a30"): ("spiral-winding", "loose"),
    ("t11", "a31"): ("spiral-arm-count", "1"), ("t11", "a32"): ("spiral-arm-count", "2"),
    ("t11", "a33"): ("spiral-arm-count", "3"), ("t11", "a34"): ("spiral-arm-count", "4"),
    ("t11", "a36"): ("spiral-arm-count", "more-than-4"),
    ("t11", "a37"): ("spiral-arm-count", "cant-tell"),
}
GZ2_DROPPED_TASKS = {"t08"}  # odd feature (ring, lens, ...): not a GZ-Evo v0.1 question
_GZ2_COLUMN = re.compile(r"^(t\d\d)_.+?_(a\d\d)_.+$")


class CatalogError(ValueError):
    """The catalog as a whole cannot be used; the message names the file and column."""


@dataclass
class VoteColumns:
    mapping: dict[str, str] = field(default_factory=dict)  # catalog column -> schema column
    unknown: list[str] = field(default_factory=list)       # look like votes, match no answer
    ignored: list[str] = field(default_factory=list)       # release siblings, dropped tasks


@dataclass
class Rejection:
    row: int
    id_str: str
    reason: str


@dataclass
class CatalogRows:
    """The rows that passed the catalog checks, in catalog order."""
    rows: np.ndarray                   # (n,) catalog row numbers
    ids: list[str]
    paths: list[str]                   # absolute image paths
    campaigns: list[str | None]
    votes: np.ndarray | None           # (n, n_answers) float32, None when unlabelled
    keep: dict[str, list]              # --keep-columns values, JSON-ready


def read_catalog(path: str | Path, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A parquet or CSV table with at least one row; ``text_columns`` of a CSV stay text (an id
    such as ``007`` must not become the number 7)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog {path} does not exist")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.name.endswith((".csv", ".csv.gz")):
            df = pd.read_csv(path, dtype={c: str for c in text_columns}, dtype_backend="numpy_nullable",
                             low_memory=False)
        else:
            raise CatalogError(f"catalog {path}: expected a .parquet or .csv file")
    except pd.errors.EmptyDataError:
        raise CatalogError(f"catalog {path} is empty (no header, no rows)") from None
    except (ValueError, OSError) as e:  # pyarrow and the CSV parser raise these on bad files
        if isinstance(e, CatalogError):
            raise
        raise CatalogError(f"catalog {path} cannot be read: {e}") from e
    if len(df) == 0:
        raise CatalogError(f"catalog {path} has a header but no rows")
    return df


def _is_sibling(rest: str) -> bool:
    return rest in SIBLING_NAMES or rest.endswith(SIBLING_SUFFIXES)


def find_vote_columns(columns, schema: Schema, campaign: str | None = None) -> VoteColumns:
    """Classify catalog columns into schema vote columns, unknown vote-like ones and siblings."""
    known = schema.column_index
    stems = {q.name.rsplit("-", 1)[0] for q in schema.questions}  # "bar" of "bar-dr5"
    if campaign is not None:
        schema.campaign_columns(campaign)  # raises naming the valid campaigns
    suffixes = tuple(f"-{c}" for c in schema.campaigns)
    out = VoteColumns()
    for col in map(str, columns):
        if col in known:
            out.mapping[col] = col
            continue
        gz2 = _GZ2_COLUMN.match(col)
        if campaign == "gz2" and gz2:
            task, answer = gz2.groups()
            if not col.endswith("_count") or task in GZ2_DROPPED_TASKS:
                out.ignored.append(col)
            elif (task, answer) in GZ2_HART16:
                q, a = GZ2_HART16[task, answer]
                out.mapping[col] = f"{q}-gz2_{a}"
            else:
                out.unknown.append(col)
            continue
        question, sep, rest = col.partition("_")
        if not sep:
            continue
        if campaign is not None and question in stems and f"{question}-{campaign}_{rest}" in known:
            out.mapping[col] = f"{question}-{campaign}_{rest}"
        elif question in stems or question.endswith(suffixes):
            (out.ignored if _is_sibling(rest) else out.unknown).append(col)
    return out


def _numeric(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and a mask of cells that held something other than a number."""
    values, bad = [], []
    for c in cols:
        s = df[c]
        num = pd.to_numeric(s, errors="coerce")
        values.append(num.to_numpy(dtype="float64", na_value=np.nan))
        bad.append((s.notna() & num.isna()).to_numpy(dtype=bool))
    return np.stack(values, 1), np.stack(bad, 1)


def _first_bad(mask: np.ndarray, describe, reasons: dict, offset: int) -> None:
    """For each row with a bad cell, record ``describe(row, column index)`` of the first one."""
    hit = mask.any(1)
    for r, j in zip(np.flatnonzero(hit), mask[hit].argmax(1)):
        reasons.setdefault(offset + int(r), describe(r, j))


def _check_votes(df: pd.DataFrame, schema: Schema, vc: VoteColumns, reasons: dict, offset: int) -> np.ndarray:
    """Votes of a block of rows (numbered from ``offset``) in schema order; bad rows to ``reasons``."""
    cols = list(vc.mapping)
    raw, non_numeric = _numeric(df, cols)

    def cell(what):
        return lambda r, j: f"{what} {raw[r, j]:g} in column {cols[j]!r}"
    _first_bad(non_numeric, lambda r, j: f"non-numeric vote {df[cols[j]].iloc[r]!r} in column "
               f"{cols[j]!r}", reasons, offset)
    # A question whose answers are all missing in a row was not asked of that galaxy (merged
    # multi-campaign tables leave other campaigns empty): zero votes. A partly missing one is bad.
    target = np.array([schema.column_index[vc.mapping[c]] for c in cols])
    _, question_of = np.unique(schema.question_index[target], return_inverse=True)
    member = np.eye(question_of.max() + 1, dtype=np.float32)[question_of]  # (cols, questions)
    missing = np.isnan(raw)
    unasked = (missing.astype(np.float32) @ member == member.sum(0))[:, question_of]
    _first_bad(missing & ~unasked & ~non_numeric, cell("missing vote"), reasons, offset)
    _first_bad(np.isinf(raw), cell("infinite vote"), reasons, offset)
    finite = np.where(np.isfinite(raw), raw, 0.0)
    _first_bad(finite < 0, cell("negative vote"), reasons, offset)
    _first_bad(np.abs(finite - np.round(finite)) > 1e-6, cell("non-integer vote"), reasons, offset)
    _first_bad(finite > MAX_VOTE, lambda r, j: f"vote {raw[r, j]:g} in column {cols[j]!r} is too large to "
               f"store (float32 holds whole counts up to {MAX_VOTE:,})", reasons, offset)
    if vc.unknown:
        extra, _ = _numeric(df, vc.unknown)
        _first_bad(np.nan_to_num(extra) != 0,
                   lambda r, j: f"votes ({extra[r, j]:g}) in column {vc.unknown[j]!r}, which is not an "
                   f"answer of schema {schema.name}", reasons, offset)
    votes = np.zeros((len(df), schema.n_answers), dtype=np.float32)
    votes[:, target] = finite
    return votes


def _votes(df: pd.DataFrame, schema: Schema, vc: VoteColumns, reasons: dict) -> np.ndarray:
    """Checked in blocks of rows, so a million-row catalog needs no float64 copy of all of it."""
    return np.concatenate([_check_votes(df.iloc[i:i + ROW_BLOCK], schema, vc, reasons, i)
                           for i in range(0, len(df), ROW_BLOCK)])


def _campaigns(df: pd.DataFrame, schema: Schema, votes, campaign: str | None, reasons: dict) -> list:
    """Each row's campaign: the catalog's ``campaign`` column, else ``campaign=``, else the
    single campaign whose columns hold votes (None when unlabelled or ambiguous)."""
    if CAMPAIGN_COLUMN in df.columns:
        out = [None if pd.isna(c) else str(c) for c in df[CAMPAIGN_COLUMN]]
        for r, c in enumerate(out):
            if c is not None and c not in schema.campaigns:
                reasons.setdefault(r, f"campaign {c!r} is not in schema {schema.name} ({schema.campaigns})")
        return out
    if campaign is not None or votes is None:
        return [campaign] * len(df)
    per_answer = votes > 0
    names = np.array(schema.campaigns)
    has = np.stack([per_answer[:, [schema.column_index[c] for c in schema.campaign_columns(n)]].any(1)
                    for n in names], 1)
    return [str(names[h][0]) if h.sum() == 1 else None for h in has]


def _plain(v):
    """Catalog cells as JSON values: numpy scalars to Python, missing to None."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _json_value(v):
    """One ``keep_columns`` cell as a JSON value (see the module doc); TypeError if it has none."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    v = _plain(v)
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if hasattr(v, "isoformat"):  # datetime, date, time, pandas Timestamp/Timedelta
        return v.isoformat()
    raise TypeError(type(v).__name__)


def _keep_values(column: pd.Series, rows: np.ndarray) -> list:
    out = []
    for r, v in zip(rows, column.to_numpy(dtype=object)[rows]):
        try:
            out.append(_json_value(v))
        except TypeError as e:
            raise CatalogError(f"keep column {column.name!r}: row {r} holds a {e} value, which meta.json "
                               "cannot store; convert that column to text or numbers, or leave it out") from None
    return out


def load_rows(path: str | Path, schema: Schema, *, id_column: str, path_column: str,
              labelled: bool, campaign: str | None = None,
              keep_columns: tuple[str, ...] = (), class_column: str | None = None,
              class_map=None) -> tuple[CatalogRows, list[Rejection], VoteColumns]:
    """Read ``path`` and return the rows fit to shard, the rejected rows, and the vote columns.
    With ``class_map`` (``data_prep.class_votes.ClassMap``) the votes are its pseudo-votes for
    ``class_column`` instead of vote columns."""
    path = Path(path).resolve()
    df = read_catalog(path, (id_column, path_column))
    wanted = (("id", id_column), ("image path", path_column), *(("keep", k) for k in keep_columns),
              *((("class", class_column),) if class_map is not None else ()))
    for what, col in wanted:
        if col not in df.columns:
            raise CatalogError(f"catalog {path}: no {what} column {col!r}; columns are "
                               f"{', '.join(map(str, df.columns[:30]))}{' ...' if len(df.columns) > 30 else ''}")
    reasons: dict[int, str] = {}
    ids = ["" if pd.isna(v) else str(_plain(v)).strip() for v in df[id_column]]
    first_seen: dict[str, int] = {}
    for r, i in enumerate(ids):
        if not i:
            reasons[r] = f"empty {id_column}"
        elif i in first_seen:
            reasons[r] = f"duplicate {id_column} (first at row {first_seen[i]})"
        else:
            first_seen[i] = r
    paths, root = [], str(path.parent)
    for r, p in enumerate(df[path_column]):
        p = "" if pd.isna(p) else str(p).strip()
        full = os.path.join(root, p)  # an absolute p stays absolute
        if not p:
            reasons.setdefault(r, f"empty {path_column}")
        elif not os.path.isfile(full):  # checked here so a catalog of missing files fails fast
            reasons.setdefault(r, f"image file not found: {full}")
        paths.append(full)

    vc = find_vote_columns(df.columns, schema, campaign)
    votes = None
    if labelled and class_map is not None:
        votes = class_map.votes(df[class_column], schema, reasons, f"catalog {path}")
        campaign = class_map.campaign
    elif labelled:
        if not vc.mapping:
            hint = f" (unknown vote-like columns: {', '.join(vc.unknown[:10])})" if vc.unknown else ""
            raise CatalogError(f"catalog {path}: no vote columns of schema {schema.name}{hint}; name the "
                               "campaign of a plain release table (--campaign), or pass --unlabelled")
        votes = _votes(df, schema, vc, reasons)
    campaigns = _campaigns(df, schema, votes, campaign, reasons)

    ok = np.array([r not in reasons for r in range(len(df))], dtype=bool)
    keep_idx = np.flatnonzero(ok)
    rows = CatalogRows(rows=keep_idx, ids=[ids[r] for r in keep_idx], paths=[paths[r] for r in keep_idx],
                       campaigns=[campaigns[r] for r in keep_idx],
                       votes=None if votes is None else votes[keep_idx],
                       keep={k: _keep_values(df[k], keep_idx) for k in keep_columns})
    rejected = [Rejection(r, ids[r], reasons[r]) for r in sorted(reasons)]
    return rows, rejected, vc
