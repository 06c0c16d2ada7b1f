"""Class catalogs as votes: one class per galaxy -> pseudo-votes on a schema's decision tree.

Many catalogs hold a class per galaxy (GZ1's elliptical / spiral / edge-on / merger), not vote
counts. A class map (YAML, ``configs/class_votes/<name>.yaml``) lists for each class value the
answer columns it implies and gives each ``pseudo_votes`` votes; an empty list gives no votes
(the row is shard with zero votes, i.e. unlabelled for the supervised loss). The numbers are
pseudo-votes, not volunteer counts: shards made this way say ``votes_are: pseudo``.

The map is checked against the schema when loaded: every answer must be a schema column, all
answers of the map must belong to one campaign, and each answer's question must be reachable
(its parent answer listed in the same class), so the votes follow a path of the tree.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.storage.catalog import CatalogError, _plain
from hybridssl.config import read_yaml_mapping, resolve_config_path
from hybridssl.schema import Schema


@dataclass(frozen=True)
class ClassMap:
    path: Path
    pseudo_votes: int
    classes: dict[str, tuple[str, ...]]  # class value (as text) -> answer columns
    campaign: str | None                 # the one campaign the answers belong to

    @property
    def hash(self) -> str:
        canon = [self.pseudo_votes, sorted((k, list(v)) for k, v in self.classes.items())]
        return hashlib.sha256(json.dumps(canon).encode()).hexdigest()[:16]

    def describe(self, column: str) -> dict:
        """What a manifest records so nobody reads these as volunteer counts."""
        return {"votes_are": "pseudo", "class_column": column, "class_map": str(self.path),
                "class_map_hash": self.hash, "pseudo_votes": self.pseudo_votes}

    def votes(self, values: pd.Series, schema: Schema, reasons: dict, where: str) -> np.ndarray:
        """(n, n_answers) float32 pseudo-votes for a class column; an empty cell rejects its row
        (into ``reasons``); a value the map lacks is a catalog-wide error naming it."""
        text = ["" if pd.isna(v) else str(_plain(v)).strip() for v in values]
        unmapped = {}
        for r, t in enumerate(text):
            if not t:
                reasons.setdefault(r, f"empty class column {values.name!r}")
            elif t not in self.classes:
                unmapped.setdefault(t, r)
        if unmapped:
            shown = ", ".join(f"{v!r} (first at row {r})" for v, r in list(unmapped.items())[:5])
            raise CatalogError(f"{where}: class column {values.name!r} has values with no mapping in "
                               f"{self.path}: {shown}; mapped values: {sorted(self.classes)}")
        columns = {v: [schema.column_index[a] for a in answers] for v, answers in self.classes.items()}
        out = np.zeros((len(text), schema.n_answers), dtype=np.float32)
        for r, t in enumerate(text):
            if t:
                out[r, columns[t]] = self.pseudo_votes
        return out


def load_class_map(name_or_path: str, schema: Schema) -> ClassMap:
    """Read and check a class map; any problem raises :class:`CatalogError` naming the value."""
    try:
        path = resolve_config_path(name_or_path, "class_votes")
    except ValueError as e:
        raise CatalogError(str(e)) from None
    raw = read_yaml_mapping(path, CatalogError, "class map")
    unknown_keys = set(raw) - {"pseudo_votes", "classes"}
    if unknown_keys:
        raise CatalogError(f"class map {path}: unknown keys {sorted(unknown_keys)}; valid: classes, pseudo_votes")
    votes, classes = raw.get("pseudo_votes"), raw.get("classes")
    if not isinstance(votes, int) or isinstance(votes, bool) or votes < 1:
        raise CatalogError(f"class map {path}: pseudo_votes must be an integer >= 1, got {votes!r}")
    if not isinstance(classes, dict) or not classes:
        raise CatalogError(f"class map {path}: 'classes' must map each class value to a list of answers")
    owner = {c: q for q in schema.questions for c in q.columns}
    checked, campaigns = {}, set()
    for value, answers in classes.items():
        where = f"class map {path}: class {str(value)!r}"
        if not isinstance(answers, list):
            raise CatalogError(f"{where}: expected a list of answer columns, got {answers!r}")
        for a in answers:
            if a not in owner:
                raise CatalogError(f"{where}: answer {a!r} is not a column of schema {schema.name}")
            parent = owner[a].parent
            if parent is not None and parent not in answers:
                raise CatalogError(f"{where}: answer {a!r} breaks the decision tree: its question "
                                   f"{owner[a].name!r} is asked after {parent!r}, which this class does not vote")
            campaigns.add(owner[a].campaign)
        checked[str(value)] = tuple(answers)
    if len(campaigns) > 1:
        raise CatalogError(f"class map {path}: answers span campaigns {sorted(campaigns)}; use one campaign")
    return ClassMap(path, votes, checked, campaigns.pop() if campaigns else None)
