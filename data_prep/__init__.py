"""Turn galaxy catalogs and images (real or synthetic) into WebDataset shards."""
