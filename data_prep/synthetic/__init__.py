"""The synthetic GZ-Evo-like demo dataset: physically rendered galaxies and simulated volunteers.

``morphology`` samples true parameters, ``surveys`` holds imaging styles, ``render`` draws
images, ``volunteers`` turns truth into decision-tree votes, ``writer`` writes the catalogs
and images, ``montage`` draws examples, ``cli`` is ``hybridssl demo-data``.
"""
