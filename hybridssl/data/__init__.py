"""Reading shard sets: the training stream (``stream``) and the read-once evaluation reader (``indexed``)."""
from hybridssl.data.indexed import IndexedShards, collate_samples, make_eval_loader, read_meta
from hybridssl.data.samples import decode_image
from hybridssl.data.stream import DataConfig, TrainLoader, TrainStream, build_train_loader

__all__ = ["DataConfig", "TrainLoader", "TrainStream", "build_train_loader", "decode_image",
           "IndexedShards", "collate_samples", "make_eval_loader", "read_meta"]
