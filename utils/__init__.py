"""The bottom of the package graph: argument checks, atomic file writes, the hardware description."""
