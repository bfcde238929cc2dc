"""ValuationDataModule: distribution, per-agent ranges, seeding, batching and resume-safe shuffling."""

import pytest
import torch
from scipy import stats

from datamodules import BatchShuffleSampler, TrainBatch, ValuationDataModule, sample_valuations


def _module(**overrides) -> ValuationDataModule:
    settings = dict(n_agents=2, n_items=3, train_size=100, val_size=30, test_size=20, batch_size=16, device="cpu")
    settings.update(overrides)
    dm = ValuationDataModule(**settings)
    dm.setup()
    return dm


def test_samples_are_uniform_on_each_agents_range() -> None:
    generator = torch.Generator().manual_seed(1)
    low, high = [0.0, 2.0], [1.0, 5.0]
    values = sample_valuations(20000, 2, 3, low, high, generator=generator)
    assert values.shape == (20000, 2, 3)
    for agent in range(2):
        column = values[:, agent].flatten().double().numpy()
        assert column.min() >= low[agent] and column.max() <= high[agent]
        # Kolmogorov-Smirnov against scipy's U[low, high]: a wrong range or shape is rejected at any seed.
        result = stats.kstest(column, stats.uniform(loc=low[agent], scale=high[agent] - low[agent]).cdf)
        assert result.pvalue > 1e-3


def test_same_seed_same_data_and_splits_are_independent() -> None:
    a, b, c = _module(seed=3), _module(seed=3), _module(seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split].valuations, b.splits[split].valuations)
        assert not torch.equal(a.splits[split].valuations, c.splits[split].valuations)
    assert not torch.equal(a.splits["train"].valuations[:20], a.splits["test"].valuations)


def test_loaders_serve_whole_batches() -> None:
    dm = _module()
    batches = list(dm.train_dataloader())
    assert all(isinstance(batch, TrainBatch) for batch in batches)
    train = [batch.valuations for batch in batches]
    assert [len(batch) for batch in train] == [16] * 6 + [4]
    assert all(batch.shape[1:] == (2, 3) for batch in train)
    # one epoch is a permutation of the training set, and the indices say which profiles a batch holds
    indices = torch.cat([batch.indices for batch in batches])
    assert indices.dtype == torch.long and torch.equal(indices.sort().values, torch.arange(100))
    assert torch.equal(torch.cat(train), dm.splits["train"].valuations[indices])
    (test_batch,) = list(dm.test_dataloader())
    assert torch.equal(test_batch, dm.splits["test"].valuations)
    assert [len(batch) for batch in dm.val_dataloader()] == [16, 14]


def test_shuffle_depends_only_on_seed_and_epoch() -> None:
    def order(epoch: int, seed: int = 0) -> torch.Tensor:
        sampler = BatchShuffleSampler(50, 8, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.cat(list(sampler))

    assert torch.equal(order(2), order(2))  # a resumed run replays the same epoch
    assert torch.equal(order(2).sort().values, torch.arange(50))
    assert not torch.equal(order(1), order(2))
    assert not torch.equal(order(1), order(1, seed=1))
    assert torch.equal(torch.cat(list(BatchShuffleSampler(10, 4))), torch.arange(10))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(batch_size=101), "batch_size"),
        (dict(val_batch_size=31), "val_batch_size"),
        (dict(test_size=0), "test_size"),
        (dict(low=1.0, high=1.0), "low < high"),
        (dict(high=[1.0, 2.0, 3.0]), "3 entries"),
        (dict(low=float("nan")), "finite"),
    ],
)
def test_bad_settings_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _module(**overrides)
