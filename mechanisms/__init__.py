"""Mechanisms: the Sinkhorn matching layer, demand marginals, learned and analytic auctions."""
