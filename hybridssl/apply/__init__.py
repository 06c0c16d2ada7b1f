"""Using an exported backbone + Dirichlet head: predict, calibrate, embed, similar, anomalies, acquire.

``sources`` turns ``--shards`` / ``--catalog`` into batches of galaxies; ``inference`` runs the
backbone once per batch and the head once per MC-dropout sample. Each command is one module.
"""
