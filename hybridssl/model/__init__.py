"""The networks and what they learn from: ``hybrid`` (one timm backbone with the BYOL branch and the
Dirichlet head a mode needs), ``heads`` (votes -> Dirichlet concentrations) and ``losses``."""
