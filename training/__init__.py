"""Training: the LightningModule (one run, or K members as one), its fast step, validation, metrics and warm start.

The run pipeline behind ``train.py`` (configuration, run directory, interrupts, reports) is :mod:`runs`.
"""

from training.module import AuctionModule

__all__ = ["AuctionModule"]
