"""Seeded valuation profiles for training, validation and test (section 4.5), drawn from the run's distribution.

The three splits come from independent streams spawned from one seed (reproducible on a given device type: CPU and
CUDA generators differ).  Batches are served whole (an index tensor per batch, ``batch_size=None``: no collation,
data generated on the GPU stays there); training batches are :class:`TrainBatch` ``(indices, valuations)``, so that
per-profile state (the persistent misreports) can follow each profile.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from distributions import Uniform, ValuationDistribution
from utils.checks import Bounds, check_positive_int

__all__ = ["BatchShuffleSampler", "TrainBatch", "derive_seed", "ValuationDataModule", "ValuationDataset",
           "sample_valuations"]

_SHUFFLE_STREAM = 3  # streams 0, 1, 2 sample the train, val and test splits


def derive_seed(seed: int, *stream: int) -> int:
    """A 63-bit seed for one random stream of a run, independent of every other (seed, stream) pair."""
    sequence = np.random.SeedSequence(seed, spawn_key=stream)
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def sample_valuations(n: int, n_agents: int, n_items: int, low: Bounds = 0.0, high: Bounds = 1.0, *,
                      generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """``n`` profiles ``(n, agents, items)``, entry ``(b, i, j)`` uniform on ``[low_i, high_i]`` (:class:`Uniform`)."""
    return Uniform(n_agents, n_items, low, high).sample(n, generator, device)


class TrainBatch(NamedTuple):
    """A training batch: the profiles' positions ``(batch,)`` (int64) and valuations ``(batch, agents, items)``."""

    indices: Tensor
    valuations: Tensor


class ValuationDataset(Dataset[Tensor]):
    """Profiles ``(n, agents, items)``; an index tensor gets a whole batch (a :class:`TrainBatch` ``with_indices``)."""

    def __init__(self, valuations: Tensor, with_indices: bool = False) -> None:
        if valuations.dim() != 3:
            raise ValueError(f"valuations must have shape (n, agents, items), got {tuple(valuations.shape)}")
        self.valuations, self.with_indices = valuations, with_indices

    def __len__(self) -> int:
        return self.valuations.shape[0]

    def __getitem__(self, index: Tensor | int) -> Tensor | TrainBatch:
        if self.with_indices:
            indices = torch.as_tensor(index, dtype=torch.long).to(self.valuations.device)
            return TrainBatch(indices, self.valuations[indices])
        return self.valuations[index]


class BatchShuffleSampler(Sampler[Tensor]):
    """Yields index tensors of ``batch_size`` (the last one may be shorter); with ``shuffle``, epoch ``e``'s
    permutation is seeded by ``(seed, e)`` (Lightning calls :meth:`set_epoch`), so a resumed run sees the batches
    an uninterrupted one would.  Process ``rank`` of ``num_replicas`` takes batches ``rank, rank + num_replicas,
    ...``; ``even``: as many on every process (the last ``len % num_replicas`` dropped: DDP steps in lockstep)."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = False, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0, even: bool = False) -> None:
        if batch_size < 1 or batch_size > n:
            raise ValueError(f"batch size must be in [1, {n}] (the data set size), got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.num_replicas, self.rank, self.even = num_replicas, rank, even
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, batches: int) -> None:
        """Make the next iteration skip its first ``batches`` batches (a run resumed mid-epoch, after them)."""
        self.start = batches

    def __len__(self) -> int:
        total = -(-self.n // self.batch_size)
        return total // self.num_replicas if self.even else len(range(self.rank, total, self.num_replicas))

    def __iter__(self) -> Iterator[Tensor]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, _SHUFFLE_STREAM, self.epoch))
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        batches = order.split(self.batch_size)[self.rank :: self.num_replicas]
        start, self.start = self.start, 0
        yield from batches[start : len(self)]


class ValuationDataModule(pl.LightningDataModule):
    """Training, validation and test valuation profiles ``(batch, agents, items)`` (defaults: the paper's sizes).

    ``device="auto"`` samples and keeps the data on the trainer's device; ``"cpu"`` on the CPU (Lightning moves
    each batch).  Without ``distribution``, values are ``U[low_i, high_i]`` (``low``/``high`` are used only then).
    """

    def __init__(self, n_agents: int, n_items: int, low: Bounds = 0.0, high: Bounds = 1.0, train_size: int = 2**19,
                 val_size: int = 4096, test_size: int = 1000, batch_size: int = 4096, val_batch_size: int | None = None,
                 seed: int = 0, device: str = "auto", distribution: ValuationDistribution | None = None) -> None:
        super().__init__()
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            check_positive_int(value, f"data.{name}")
        val_batch_size = batch_size if val_batch_size is None else val_batch_size
        if not 1 <= batch_size <= train_size:
            raise ValueError(f"data.batch_size={batch_size} must be in [1, train_size={train_size}]")
        if not 1 <= val_batch_size <= val_size:
            raise ValueError(f"data.val_batch_size={val_batch_size} must be in [1, val_size={val_size}]")
        if distribution is None:
            distribution = Uniform(n_agents, n_items, low, high)  # validates the ranges early
        else:
            distribution.check_setting(n_agents, n_items, "the data")
        self.save_hyperparameters(ignore=["distribution"])
        self.n_agents, self.n_items, self.distribution = n_agents, n_items, distribution
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.seed, self.device = seed, device
        self.splits: dict[str, ValuationDataset] = {}
        self.resume_batches = 0  # set by a resume from a mid-epoch checkpoint (runs/interrupt.py)

    def setup(self, stage: str | None = None) -> None:
        """Sample all three splits once (idempotent)."""
        if self.splits:
            return
        if self.device != "auto":
            device = torch.device(self.device)
        else:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        for stream, (split, size) in enumerate(self.sizes.items()):
            generator = torch.Generator(device=device).manual_seed(derive_seed(self.seed, stream))
            values = self.distribution.sample(size, generator)
            self.splits[split] = ValuationDataset(values, with_indices=split == "train")

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        """Batches of ``split``; under a multi-process trainer, this process's share (see BatchShuffleSampler)."""
        self.setup()
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = BatchShuffleSampler(self.sizes[split], batch_size, shuffle=shuffle, seed=self.seed,
                                      num_replicas=replicas, rank=rank, even=split == "train")
        return DataLoader(self.splits[split], batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        """Shuffled :class:`TrainBatch` es, as many per process (after a mid-epoch resume: from ``resume_batches``)."""
        loader = self._loader("train", self.batch_size, shuffle=True)
        start, self.resume_batches = self.resume_batches, 0
        if start < len(loader.sampler):  # (a checkpoint at the end of an epoch: the next one starts afresh)
            loader.sampler.set_start(start)
        return loader

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order (batch ``i`` to process ``i % world_size``)."""
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The whole test set as one batch (to the first process only: the test runs once)."""
        return self._loader("test", self.sizes["test"], shuffle=False)
