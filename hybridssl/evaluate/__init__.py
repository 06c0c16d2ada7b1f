"""Evaluating exported backbones on downstream tasks: cached frozen features (``features``),
nested label-budget subsets (``subsets``), probes (``probes``), fine-tuning (``finetune``),
scores (``metrics``) and the benchmark's outputs (``report``)."""
