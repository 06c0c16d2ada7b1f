"""The Galaxy Zoo label schema: campaigns, decision-tree questions, answers, vote columns.

A schema YAML lists campaigns, each either inline or by name (``configs/schema/campaigns/
<name>.yaml``), so adding a campaign is a YAML edit. Column names are
``{question}_{answer}`` where the question already carries its campaign suffix
(``bar-dr5_strong``). Each question names the answer column it is asked after, or null.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from hybridssl.config import config_dir, read_yaml_mapping


class SchemaError(ValueError):
    """The schema YAML is inconsistent; the message names the question or column."""


@dataclass(frozen=True)
class Question:
    name: str            # e.g. "bar-dr5"
    campaign: str        # e.g. "dr5"
    answers: tuple       # answer suffixes, e.g. ("strong", "weak", "no")
    start: int           # first column index in Schema.label_cols
    parent: str | None   # answer column this question is asked after, None = always asked

    @property
    def end(self) -> int:
        return self.start + len(self.answers)

    @property
    def columns(self) -> list[str]:
        return [f"{self.name}_{a}" for a in self.answers]


class Schema:
    """Questions in file order; ``label_cols`` is the flat vote-column order used everywhere."""

    def __init__(self, name: str, campaigns: dict[str, list[dict]]):
        self.name = name
        self.campaigns = list(campaigns)
        questions, start = [], 0
        for campaign, qs in campaigns.items():
            for q in qs:
                if not isinstance(q, dict) or "name" not in q or "answers" not in q:
                    raise SchemaError(f"campaign {campaign!r}: each question needs 'name' and 'answers', got {q!r}")
                answers = tuple(str(a) for a in q["answers"])
                if len(answers) < 2:
                    raise SchemaError(f"question {q['name']!r} needs at least 2 answers, has {answers}")
                questions.append(Question(str(q["name"]), campaign, answers, start, q.get("parent")))
                start += len(answers)
        self.questions = questions
        self.label_cols = [c for q in questions for c in q.columns]
        self._validate()

    # -- construction checks --------------------------------------------------------------
    def _validate(self) -> None:
        seen = set()
        for c in self.label_cols:
            if c in seen:
                raise SchemaError(f"schema {self.name!r}: duplicate column {c!r}")
            seen.add(c)
        names = [q.name for q in self.questions]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"schema {self.name!r}: duplicate questions {dup}")
        for q in self.questions:
            if q.parent is not None and q.parent not in seen:
                raise SchemaError(f"question {q.name!r}: parent answer {q.parent!r} is not a column of "
                                  f"schema {self.name!r}")
        owner = {c: q for q in self.questions for c in q.columns}
        for q in self.questions:  # walk up; a revisit means a cycle
            path, node = [q.name], q
            while node.parent is not None:
                node = owner[node.parent]
                if node.name in path:
                    raise SchemaError(f"schema {self.name!r}: cycle in decision tree: "
                                      f"{' -> '.join(path + [node.name])}")
                path.append(node.name)

    # -- lookups ---------------------------------------------------------------------------
    @property
    def n_answers(self) -> int:
        return len(self.label_cols)

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @cached_property
    def column_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.label_cols)}

    @cached_property
    def question_index(self) -> np.ndarray:
        """(n_answers,) index of the question owning each column: for segment sums."""
        return np.repeat(np.arange(self.n_questions), [len(q.answers) for q in self.questions])

    @cached_property
    def campaign_index(self) -> np.ndarray:
        """(n_questions,) index into ``campaigns`` of each question."""
        return np.array([self.campaigns.index(q.campaign) for q in self.questions])

    def campaign_columns(self, campaign: str) -> list[str]:
        if campaign not in self.campaigns:
            raise SchemaError(f"unknown campaign {campaign!r}; schema {self.name!r} has {self.campaigns}")
        return [c for q in self.questions if q.campaign == campaign for c in q.columns]

    @cached_property
    def hash(self) -> str:
        """Stable over formatting: depends only on columns and the tree."""
        canon = [(q.name, q.answers, q.parent) for q in self.questions]
        return hashlib.sha256(json.dumps(canon).encode()).hexdigest()[:16]

    def ask_probability(self, fractions) -> np.ndarray:
        """Probability each question is asked: product of parent-answer fractions to the root.

        ``fractions``: (..., n_answers) vote fractions (or Dirichlet means). Returns
        (..., n_questions). Root questions give 1.
        """
        f = np.asarray(fractions, dtype=np.float64)
        if f.shape[-1] != self.n_answers:
            raise ValueError(f"fractions have {f.shape[-1]} answers, schema {self.name!r} has {self.n_answers}")
        out = np.ones(f.shape[:-1] + (self.n_questions,))
        for qi in self._topological_order:
            q = self.questions[qi]
            if q.parent is not None:
                pc = self.column_index[q.parent]
                pq = self.question_index[pc]
                out[..., qi] = out[..., pq] * f[..., pc]
        return out

    @cached_property
    def _topological_order(self) -> list[int]:
        depth = {}
        owner = {c: i for i, q in enumerate(self.questions) for c in q.columns}

        def d(i):
            if i not in depth:
                p = self.questions[i].parent
                depth[i] = 0 if p is None else d(owner[p]) + 1
            return depth[i]
        return sorted(range(self.n_questions), key=d)

    def summary(self) -> str:
        lines = [f"schema {self.name} (hash {self.hash})",
                 f"{len(self.campaigns)} campaigns, {self.n_questions} questions, {self.n_answers} answers"]
        for c in self.campaigns:
            qs = [q for q in self.questions if q.campaign == c]
            lines.append(f"  {c:<10} {len(qs):>3} questions {sum(len(q.answers) for q in qs):>4} answers")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, {self.n_questions} questions, {self.n_answers} answers)"


def available_schemas() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "schema").glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, SchemaError, "schema file")


def load_schema(name_or_path: str | os.PathLike | Schema = "gz_evo_v0.1") -> Schema:
    """A shipped schema by name (``configs/schema/<name>.yaml``) or a YAML path."""
    if isinstance(name_or_path, Schema):
        return name_or_path
    p = Path(name_or_path)
    if not (p.suffix in (".yaml", ".yml") and p.exists()):
        p = config_dir() / "schema" / f"{name_or_path}.yaml"
        if not p.exists():
            raise SchemaError(f"unknown schema {str(name_or_path)!r}; shipped: {available_schemas()}")
    raw = _read_yaml(p)
    if "campaigns" not in raw:
        raise SchemaError(f"{p}: a schema needs a 'campaigns' list")
    campaigns: dict[str, list[dict]] = {}
    for entry in raw["campaigns"]:
        if isinstance(entry, str):
            cp = p.parent / "campaigns" / f"{entry}.yaml"
            if not cp.exists():
                raise SchemaError(f"{p}: campaign {entry!r} has no file {cp}")
            entry = _read_yaml(cp)
        if not isinstance(entry, dict):
            raise SchemaError(f"{p}: campaign entry {entry!r} is neither a name nor a mapping")
        name = entry.get("name")
        if not name or "questions" not in entry:
            raise SchemaError(f"{p}: each campaign needs 'name' and 'questions' (got keys {list(entry)})")
        if name in campaigns:
            raise SchemaError(f"{p}: campaign {name!r} listed twice")
        campaigns[name] = entry["questions"]
    return Schema(raw.get("name", p.stem), campaigns)


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", default="gz_evo_v0.1",
                        help="shipped schema name or YAML path (default: gz_evo_v0.1)")
    parser.add_argument("--columns", action="store_true", help="also list every vote column")


def run(args) -> int:
    schema = load_schema(args.name)
    print(schema.summary())
    if args.columns:
        for q in schema.questions:
            print(f"  {q.name:<40} after {q.parent or '-':<45} {' '.join(q.answers)}")
    return 0


def campaign_of_columns(columns: Sequence[str], schema: Schema) -> list[str]:
    """Campaigns whose columns appear in ``columns``."""
    cols = set(columns)
    return [c for c in schema.campaigns if cols & set(schema.campaign_columns(c))]
