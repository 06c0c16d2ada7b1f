"""Pretraining (``hybridssl pretrain``): hybrid | byol | supervised | scratch, one Lightning trainer.

- ``config``: the ``PretrainConfig`` dataclass tree; ``module``: the LightningModule (one step
  for every mode); ``optim``: optimiser and schedules; ``checkpoint``: atomic, tensor-only
  checkpoint files; ``resume``: data position and RNGs for exact resume; ``run``: the Trainer.
"""
