"""Augmentation, batched on the training device with Kornia: ``config`` (the recipe and its presets),
``base`` (what every view shares), ``rgb`` and ``bands`` (8-bit RGB and float-band views),
``factory`` (which of the two the data needs) and ``preview`` (``hybridssl augment-preview``)."""
