"""hybridssl: hybrid BYOL + Dirichlet-multinomial pretraining for galaxy images."""
__version__ = "0.1.0"
