"""Pruning: structured removal, unstructured masks, schedules and treatments.

One idea per module; every name is importable from ``prunelib.pruning`` itself.

* :mod:`prunelib.pruning.structured` -- the poster's structured pruning: remove
  the lowest-norm units of each hidden layer of an ``nn.Sequential`` and their
  out-edges (``prune_structured``, ``prune_structured_to``, ``shrink``,
  ``unit_masks``, ``surviving_units``);
* :mod:`prunelib.pruning.chain` -- what that layer-by-layer path can prove it
  handles (``check_structured``); anything else raises ``UnsupportedModelError``
  naming the module;
* :mod:`prunelib.pruning.graph` -- any architecture (residual blocks,
  concatenations) through Torch-Pruning's dependency graph, behind
  ``prune_structured(..., method="graph")`` (``pip install 'prunelib[graph]'``);
* :mod:`prunelib.pruning.unstructured` -- weight masks by magnitude or at random,
  layer-wise, ``"global"`` over the hidden layers (output layer at its own rate)
  or ``"pooled"`` over every layer; ``apply_masks`` and ``sparsity_report``;
* :mod:`prunelib.pruning.masks` -- masks that persist in any training loop
  (``attach_masks``, ``make_permanent``, ``remove_masks``), compatible with
  ``torch.nn.utils.prune``;
* :mod:`prunelib.pruning.schedules` -- per-round rates of iterative pruning;
* :mod:`prunelib.pruning.treatments` -- what a pruned network is retrained from
  (``treat``: finetune, reset, rewind, reinit).

>>> import torch
>>> from prunelib.pruning import magnitude_masks, prune_structured
>>> from prunelib.models import MLP
>>> net = MLP(2, (8, 8), 2)
>>> prune_structured(net, 0.5).model[0]
Linear(in_features=2, out_features=4, bias=True)
"""

from ._common import n_removed
from .chain import SUPPORTED, UnsupportedModelError, check_structured
from .graph import prune_structured_graph
from .masks import attach_masks, attached_masks, make_permanent, remove_masks
from .schedules import (
    iterative_keep_fractions,
    iterative_round_ratios,
    structured_keep_counts,
    structured_round_ratios,
)
from .structured import (
    METHODS,
    STRUCTURED_SCORES,
    StructuredPruning,
    prune_structured,
    prune_structured_to,
    shrink,
    surviving_units,
    unit_masks,
)
from .treatments import TREATMENTS, treat
from .unstructured import (
    SCOPES,
    SparsityReport,
    apply_masks,
    magnitude_masks,
    mask_sparsity,
    random_masks,
    sparsity_report,
)

__all__ = [
    "METHODS",
    "SCOPES",
    "STRUCTURED_SCORES",
    "SUPPORTED",
    "TREATMENTS",
    "SparsityReport",
    "StructuredPruning",
    "UnsupportedModelError",
    "apply_masks",
    "attach_masks",
    "attached_masks",
    "check_structured",
    "iterative_keep_fractions",
    "iterative_round_ratios",
    "magnitude_masks",
    "make_permanent",
    "mask_sparsity",
    "n_removed",
    "prune_structured",
    "prune_structured_graph",
    "prune_structured_to",
    "random_masks",
    "remove_masks",
    "shrink",
    "sparsity_report",
    "structured_keep_counts",
    "structured_round_ratios",
    "surviving_units",
    "treat",
    "unit_masks",
]
