"""Training: the LightningModule, configuration checks and the train/test pipeline behind train.py."""

from training.module import AuctionModule

__all__ = ["AuctionModule"]
