"""A montage PNG: one row of example galaxies per campaign, titled with their top answers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_prep.synthetic.surveys import survey_of
from hybridssl.storage.atomic import atomic_path
from hybridssl.schema import Schema


def top_answers(votes: pd.Series, schema: Schema, campaign: str, depth: int = 3) -> list[str]:
    """Follow the most-voted answer down the tree: ['smooth-or-featured: featured-or-disk 80%', ...]."""
    questions = [q for q in schema.questions if q.campaign == campaign]
    lines, parent = [], None
    for _ in range(depth):
        asked = [q for q in questions if q.parent == parent and votes[q.columns].sum() > 0]
        if not asked:
            break
        q = asked[0]
        counts = votes[q.columns].to_numpy(float)
        k = int(counts.argmax())
        concept = q.name[: -len(campaign) - 1]
        lines.append(f"{concept}: {q.answers[k]} {counts[k] / counts.sum():.0%}")
        parent = q.columns[k]
    return lines


def save_montage(labelled: pd.DataFrame, root: str | os.PathLike, schema: Schema, path: str | os.PathLike,
                 per_row: int = 8) -> Path:
    """``labelled``: the labelled catalog; its ``file_loc`` is relative to ``root``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    campaigns = [c for c in schema.campaigns if (labelled["campaign"] == c).any()]
    fig, axes = plt.subplots(len(campaigns), per_row, figsize=(1.9 * per_row, 2.3 * len(campaigns)),
                             squeeze=False)
    for row, campaign in zip(axes, campaigns):
        examples = labelled[labelled["campaign"] == campaign].head(per_row)
        for ax, (_, gal) in zip(row, examples.iterrows()):
            ax.imshow(np.asarray(Image.open(Path(root) / gal["file_loc"])), interpolation="nearest")
            first = next(q for q in schema.questions if q.campaign == campaign and q.parent is None)
            lines = [f"{int(gal[first.columns].sum())} volunteers"] + top_answers(gal, schema, campaign)
            ax.set_title("\n".join(lines), fontsize=5.5, loc="left")
        for ax in row:
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"{campaign}\n({survey_of(campaign).name}-like)", fontsize=9)
    fig.suptitle("hybridssl synthetic GZ-Evo demo: examples per campaign, with the volunteers' top answers",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
