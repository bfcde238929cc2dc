"""One run from configuration to report (the body of ``train.py``), checkpoint I/O, ensembles and the paper's
tables.  Importing it registers the configuration's Python defaults with Hydra (:mod:`runs.config_store`).
"""

from runs.config_store import register_configs

register_configs()

__all__ = ["register_configs"]
