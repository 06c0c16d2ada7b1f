"""Files on disk: ``images`` (JPEG/PNG/FITS in, one resize), ``catalog`` (ids, paths, votes, checked),
``shards`` (the WebDataset shard format shared by ``data_prep`` and ``hybridssl.data``), ``atomic``
(complete-or-absent writes), ``locks`` (one writer per folder) and ``outputs`` (no output
overwrites an input)."""
