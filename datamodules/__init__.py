"""Valuation-profile data: seeded uniform samples served as whole batches."""

from datamodules.valuations import (
    BatchShuffleSampler,
    TrainBatch,
    ValuationDataModule,
    ValuationDataset,
    sample_valuations,
)

__all__ = ["BatchShuffleSampler", "TrainBatch", "ValuationDataModule", "ValuationDataset", "sample_valuations"]
