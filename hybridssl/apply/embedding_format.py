"""What both embedding layouts (one file; an ``embed --out DIR/`` folder) share: the parquet
metadata key, the error they raise, and the refusal of non-finite features."""
from __future__ import annotations

import numpy as np

from hybridssl.storage.outputs import MARK

_KEY = MARK.encode()  # also what marks the file as ours to replace (hybridssl.storage.outputs)


class EmbeddingsError(ValueError):
    """An embeddings file is missing, corrupt or inconsistent, or an id is not in it."""


def check_finite(ids: list[str], x: np.ndarray, where: str) -> None:
    """Refuse NaN or infinite features (a diverged model): every distance to them is meaningless."""
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        shown = ", ".join(repr(ids[i]) for i in bad[:3]) + (" ..." if len(bad) > 3 else "")
        raise EmbeddingsError(f"{where}: {len(bad)} of {len(x)} galaxies have NaN or infinite features ({shown}); "
                              f"the model diverged or the file was altered: export a finite checkpoint and re-embed")
