"""Exports: a pretraining checkpoint's online backbone as a timm model folder (``timm_folder``),
plus its Dirichlet head. ``from hybridssl.export import load_backbone`` is the short form."""
from hybridssl.export.timm_folder import ExportError, export_checkpoint, load_backbone, load_head, read_export_info

__all__ = ["ExportError", "export_checkpoint", "load_backbone", "load_head", "read_export_info"]
