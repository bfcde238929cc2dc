"""Second-price auctions with reserves, one per item: Myerson's auction and the item-wise and grand-bundle baselines.

Each auction is dominant-strategy truthful and individually rational; so is one per item for additive values.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["second_price"]


def second_price(bids: Tensor, reserves: Tensor) -> tuple[Tensor, Tensor]:
    """Allocation and payment ``(batch, agents, items)`` of a second-price auction with reserve on every item.

    ``bids`` is ``(batch, agents, items)``, ``reserves`` ``(items,)`` (or broadcasting to it).  Item ``j`` goes to
    its highest bidder (lowest index on ties) if that bid is at least ``reserves[j]``, who pays
    ``max(reserves[j], highest other bid)``.  Neither output requires grad.
    """
    bids = bids.detach()
    n_agents = bids.shape[1]
    top, winner = bids.max(dim=1)  # (batch, items): the first maximal index
    second = bids.topk(2, dim=1).values[:, 1] if n_agents > 1 else torch.zeros_like(top)
    reserves = reserves.to(bids.device, bids.dtype)
    sold = (top >= reserves).to(bids.dtype)
    allocation = torch.nn.functional.one_hot(winner, n_agents).to(bids.dtype).movedim(-1, 1) * sold.unsqueeze(1)
    return allocation, allocation * torch.maximum(second, reserves).unsqueeze(1)
