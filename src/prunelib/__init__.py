"""prunelib: prune neural networks and measure what pruning does to uncertainty."""

__version__ = "0.1.0"
