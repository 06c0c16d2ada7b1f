"""Evaluating exported backbones on downstream tasks: cached frozen features (``features``),
nested label-budget subsets (``subsets``), probes (``probes``), fine-tuning (``finetune``),
scores (``metrics``), intervals by mode (``bootstrap``) and the benchmark's outputs (``report``)."""
