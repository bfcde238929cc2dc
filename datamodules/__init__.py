"""Valuation-profile data: seeded uniform samples served as whole batches."""

from datamodules.valuations import BatchShuffleSampler, ValuationDataModule, ValuationDataset, sample_valuations

__all__ = ["BatchShuffleSampler", "ValuationDataModule", "ValuationDataset", "sample_valuations"]
