"""Valuation-profile data: seeded samples of the run's distribution (distributions/) served as whole batches."""

from datamodules.valuations import BatchShuffleSampler, TrainBatch, ValuationDataModule, sample_valuations

__all__ = ["BatchShuffleSampler", "TrainBatch", "ValuationDataModule", "sample_valuations"]
