"""Smoke check until the training entry point lands: solve one Sinkhorn problem."""

import torch

from mechanisms.demand import marginals
from mechanisms.sinkhorn import geometric_epsilons, solve

if __name__ == "__main__":
    a, b = marginals("unit", 1, 2)
    result = solve(torch.randn(4, 2, 3), a, b, epsilons=geometric_epsilons(1.0, 0.05, 10))
    print(f"sinkhorn ok: {result.iterations} iterations, marginal error {result.marginal_error:.4f}")
