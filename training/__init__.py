"""Training: the LightningModule (one run, or K members as one), its fast step, validation, metrics and warm start
(the run pipeline behind ``train.py`` is :mod:`runs`)."""

from training.module import AuctionModule

__all__ = ["AuctionModule"]
