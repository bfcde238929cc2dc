"""One run from configuration to report: the checks before work, the run directory, interrupts, checkpoint I/O,
the members of an ensemble, the reproduction of the paper's tables (the body of ``train.py``).

Importing this package registers the configuration's Python defaults with Hydra
(:mod:`runs.config_store`): every compose of ``conf/`` needs them.
"""

from runs.config_store import register_configs

register_configs()

__all__ = ["register_configs"]
