"""Training: the LightningModule, configuration checks and the train/test pipeline behind train.py.

Importing this package registers the configuration's Python defaults with Hydra
(:mod:`training.config_store`): every compose of ``conf/`` needs them.
"""

from training.config_store import register_configs
from training.module import AuctionModule

register_configs()

__all__ = ["AuctionModule", "register_configs"]
