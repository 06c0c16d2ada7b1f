"""Pretraining (``hybridssl pretrain``): hybrid | byol | supervised | scratch, one Lightning trainer.

- ``config``: the ``PretrainConfig`` dataclass tree; ``module``: the LightningModule (one step
  for every mode); ``optim``: optimiser and schedules; ``checkpoint``: tensor-only checkpoint
  files, found and checked without Lightning (``export`` reads them); ``checkpoint_io``: Lightning's
  atomic writer; ``resume``: data position and RNGs for exact resume; ``run``: the Trainer;
  ``cli``: ``hybridssl pretrain``.
"""
