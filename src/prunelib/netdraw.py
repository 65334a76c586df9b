"""Draw a small fully connected network, dense or pruned, from its real weights.

Chapter 1 uses this to draw the poster's Figures 1 and 2 from code: a real small network (a
:class:`prunelib.models.MLP` or an ``nn.Sequential`` of ``Linear``/activation layers, e.g.
4-6-6-2 units) with

* **unstructured pruning**: individual connections removed, given as weight masks
  ``{"fc1.weight": 0/1 tensor, ...}`` (what magnitude pruning returns); removed connections are
  drawn dashed and faint, or not at all;
* **structured pruning**: whole neurons removed, given as ``removed_units`` (or ``kept_units``,
  e.g. ``StructuredPruning.kept``) ``{"fc1": [unit indices], ...}``; removed neurons are greyed
  out and crossed, and all their in- and out-edges go with them.

Node layers are numbered 0 (inputs), 1 (outputs of the first ``Linear``), ... Layer keys in
``removed_units``/``kept_units`` are a ``Linear`` module's name (meaning its output units), the
node-layer index, or ``"input"``. Edge width and opacity grow with ``|weight|``; colour shows the
sign (blue positive, red negative).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["NetworkLayout", "draw_network", "draw_pruning_comparison", "network_layout"]

POSITIVE_COLOR = "#1f77b4"
NEGATIVE_COLOR = "#d62728"
NODE_COLOR = "#f2f2f2"
REMOVED_NODE_COLOR = "#bdbdbd"
PRUNED_EDGE_COLOR = "#9e9e9e"


@dataclass(frozen=True)
class NetworkLayout:
    """Geometry and edge sets of a network drawing (all plain numpy, no matplotlib).

    ``edges``/``pruned_edges``: int arrays [E, 3] of ``(layer, from_unit, to_unit)`` rows with
    the drawn (surviving) and the removed connections; ``weights``/``pruned_weights`` hold their
    weights. ``removed[k]`` is the set of removed units of node layer ``k``.
    """

    sizes: tuple[int, ...]
    layer_names: tuple[str, ...]
    positions: tuple[np.ndarray, ...]
    edges: np.ndarray
    weights: np.ndarray
    pruned_edges: np.ndarray
    pruned_weights: np.ndarray
    removed: tuple[frozenset[int], ...]

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def n_pruned_edges(self) -> int:
        return int(self.pruned_edges.shape[0])


def _linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("draw_network needs a model with at least one nn.Linear layer")
    for (n0, a), (n1, b) in pairwise(layers):
        if a.out_features != b.in_features:
            raise ValueError(
                f"layers {n0!r} ({a.out_features} outputs) and {n1!r} ({b.in_features} inputs) "
                "are not consecutive; draw_network draws plain feed-forward MLPs"
            )
    return layers


def _mask_for(masks: Any, name: str, k: int, shape: torch.Size) -> np.ndarray | None:
    if masks is None:
        return None
    if isinstance(masks, Mapping):
        m = None
        for key in (f"{name}.weight", name, k):
            if key in masks:
                m = masks[key]
                break
        if m is None:
            return None
    else:
        seq = list(masks)
        if k >= len(seq) or seq[k] is None:
            return None
        m = seq[k]
    arr = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if arr.shape != tuple(shape):
        raise ValueError(f"mask for {name!r} has shape {arr.shape}, weight has {tuple(shape)}")
    return arr != 0


def _layer_index(key: Any, names: Sequence[str]) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= int(key) < len(names) + 1:
            raise ValueError(f"node layer index {key} out of range 0..{len(names)}")
        return int(key)
    if key == "input":
        return 0
    key = str(key).removesuffix(".weight")
    if key in names:
        return names.index(key) + 1
    raise ValueError(f"unknown layer {key!r}; use one of {['input', *names]} or an index")


def _as_index_set(units: Iterable[int] | torch.Tensor | np.ndarray, size: int, key: Any) -> set:
    if isinstance(units, torch.Tensor):
        arr = units.detach().cpu().numpy()
    else:
        arr = np.asarray(list(units) if not isinstance(units, np.ndarray) else units)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise ValueError(f"boolean unit mask for {key!r} must have length {size}")
        arr = np.flatnonzero(arr)
    out = {int(i) for i in arr.ravel()}
    if any(not 0 <= i < size for i in out):
        raise ValueError(f"unit indices for {key!r} must lie in 0..{size - 1}, got {sorted(out)}")
    return out


def network_layout(
    model: nn.Module,
    masks: Mapping[str, Any] | Sequence[Any] | None = None,
    removed_units: Mapping[Any, Iterable[int]] | None = None,
    kept_units: Mapping[Any, Iterable[int]] | None = None,
) -> NetworkLayout:
    """Node positions and the surviving / removed edges of ``model`` (no drawing).

    A connection is removed when its mask entry is 0 or either of its end units is removed.
    """
    layers = _linear_layers(model)
    names = [n for n, _ in layers]
    sizes = [layers[0][1].in_features] + [m.out_features for _, m in layers]
    removed: list[set[int]] = [set() for _ in sizes]
    for key, units in (removed_units or {}).items():
        k = _layer_index(key, names)
        removed[k] |= _as_index_set(units, sizes[k], key)
    for key, units in (kept_units or {}).items():
        k = _layer_index(key, names)
        removed[k] |= set(range(sizes[k])) - _as_index_set(units, sizes[k], key)
    if removed[-1]:
        raise ValueError("output units cannot be removed")

    # column k = node layer k; units top to bottom, centred on y = 0, one unit apart
    positions = tuple(
        np.column_stack([np.full(n, float(k)), (n - 1) / 2.0 - np.arange(n)])
        for k, n in enumerate(sizes)
    )
    kept_rows, kept_w, cut_rows, cut_w = [], [], [], []
    for k, (name, lin) in enumerate(layers):
        w = lin.weight.detach().cpu().numpy()  # [out, in]
        mask = _mask_for(masks, name, k, lin.weight.shape)
        alive = np.ones_like(w, dtype=bool) if mask is None else mask.copy()
        for j in removed[k]:
            alive[:, j] = False
        for i in removed[k + 1]:
            alive[i, :] = False
        to_idx, from_idx = np.meshgrid(np.arange(w.shape[0]), np.arange(w.shape[1]), indexing="ij")
        rows = np.column_stack([np.full(w.size, k), from_idx.ravel(), to_idx.ravel()])
        flat_alive = alive.ravel()
        kept_rows.append(rows[flat_alive])
        kept_w.append(w.ravel()[flat_alive])
        cut_rows.append(rows[~flat_alive])
        cut_w.append(w.ravel()[~flat_alive])
    return NetworkLayout(
        sizes=tuple(sizes),
        layer_names=("input", *names),
        positions=positions,
        edges=np.concatenate(kept_rows).astype(np.int64).reshape(-1, 3),
        weights=np.concatenate(kept_w).astype(np.float64),
        pruned_edges=np.concatenate(cut_rows).astype(np.int64).reshape(-1, 3),
        pruned_weights=np.concatenate(cut_w).astype(np.float64),
        removed=tuple(frozenset(r) for r in removed),
    )


def _segments(layout: NetworkLayout, rows: np.ndarray) -> np.ndarray:
    if rows.shape[0] == 0:
        return np.zeros((0, 2, 2))
    starts = np.array([layout.positions[k][j] for k, j, _ in rows])
    ends = np.array([layout.positions[k + 1][i] for k, _, i in rows])
    return np.stack([starts, ends], axis=1)


def draw_network(
    model: nn.Module,
    ax: Axes | None = None,
    masks: Mapping[str, Any] | Sequence[Any] | None = None,
    removed_units: Mapping[Any, Iterable[int]] | None = None,
    title: str | None = None,
    *,
    kept_units: Mapping[Any, Iterable[int]] | None = None,
    pruned_style: Literal["dashed", "hidden"] = "dashed",
    layer_labels: Sequence[str] | None = None,
    max_linewidth: float = 3.0,
    node_size: float = 300.0,
) -> Axes:
    """Draw ``model``'s ``Linear`` layers as a node-and-edge diagram; return the axes.

    * ``masks``: unstructured pruning, ``{param name: 0/1 tensor}`` (keys ``"fc1.weight"`` or
      ``"fc1"``) or a list aligned with the ``Linear`` layers; 0 entries are removed connections.
    * ``removed_units`` / ``kept_units``: structured pruning, ``{layer: unit indices}``; removed
      units are drawn grey with a cross and lose all their in- and out-edges.
    * ``pruned_style``: ``"dashed"`` draws removed connections as thin dashed grey lines,
      ``"hidden"`` leaves them out.

    Surviving edges are one ``LineCollection`` with gid ``"edges"`` (one segment per connection),
    removed ones a collection with gid ``"pruned_edges"``. Edge width and opacity scale with
    ``|w| / max|w|`` over the whole network; colour is the weight's sign.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    layout = network_layout(model, masks, removed_units, kept_units)
    if pruned_style not in ("dashed", "hidden"):
        raise ValueError(f"pruned_style must be 'dashed' or 'hidden', got {pruned_style!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(layout.sizes) + 0.8, 0.45 * max(layout.sizes) + 1))

    all_w = np.abs(np.concatenate([layout.weights, layout.pruned_weights]))
    scale = float(all_w.max()) if all_w.size and all_w.max() > 0 else 1.0

    if pruned_style == "dashed":
        cut = LineCollection(
            _segments(layout, layout.pruned_edges),
            colors=PRUNED_EDGE_COLOR,
            linewidths=0.6,
            linestyles=(0, (3, 3)),
            alpha=0.45,
            zorder=1,
        )
        cut.set_gid("pruned_edges")
        ax.add_collection(cut)

    mag = np.abs(layout.weights) / scale
    colors = np.zeros((layout.n_edges, 4))
    pos = layout.weights >= 0
    colors[pos, :3] = _rgb(POSITIVE_COLOR)
    colors[~pos, :3] = _rgb(NEGATIVE_COLOR)
    colors[:, 3] = 0.2 + 0.8 * mag
    edges = LineCollection(
        _segments(layout, layout.edges),
        colors=colors,
        linewidths=0.3 + (max_linewidth - 0.3) * mag,
        zorder=2,
    )
    edges.set_gid("edges")
    ax.add_collection(edges)

    for k, xy in enumerate(layout.positions):
        gone = np.array([i in layout.removed[k] for i in range(layout.sizes[k])], dtype=bool)
        ax.scatter(xy[~gone, 0], xy[~gone, 1], s=node_size, c=NODE_COLOR, edgecolors="black",
                   linewidths=1.0, zorder=3)  # fmt: skip
        if gone.any():
            ax.scatter(xy[gone, 0], xy[gone, 1], s=node_size, c=REMOVED_NODE_COLOR,
                       edgecolors="#757575", linewidths=1.0, linestyles="--", zorder=3,
                       gid=f"removed_units_{k}")  # fmt: skip
            ax.scatter(xy[gone, 0], xy[gone, 1], s=node_size * 0.5, c="#424242", marker="x",
                       linewidths=1.5, zorder=4)  # fmt: skip

    labels = list(layer_labels) if layer_labels is not None else _default_labels(layout)
    if len(labels) != len(layout.sizes):
        raise ValueError(f"need {len(layout.sizes)} layer labels, got {len(labels)}")
    bottom = -(max(layout.sizes) - 1) / 2.0 - 0.9
    for k, text in enumerate(labels):
        ax.text(k, bottom, text, ha="center", va="top", fontsize=8)
    top = (max(layout.sizes) - 1) / 2.0
    ax.set_xlim(-0.5, len(layout.sizes) - 0.5)
    ax.set_ylim(bottom - 1.2, top + 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def _default_labels(layout: NetworkLayout) -> list[str]:
    out = []
    last = len(layout.sizes) - 1
    for k, n in enumerate(layout.sizes):
        alive = n - len(layout.removed[k])
        count = f"{alive}/{n}" if alive != n else f"{n}"
        if k == 0:
            out.append(f"input\n{count}")
        elif k == last:
            out.append(f"output\n{count}")
        else:
            out.append(f"hidden {k}\n{count}")
    return out


def _rgb(hex_color: str) -> tuple[float, float, float]:
    h = hex_color.lstrip("#")
    return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def draw_pruning_comparison(
    model: nn.Module,
    masks: Mapping[str, Any] | Sequence[Any] | None = None,
    removed_units: Mapping[Any, Iterable[int]] | None = None,
    *,
    kept_units: Mapping[Any, Iterable[int]] | None = None,
    axes: Sequence[Axes] | None = None,
    pruned_style: Literal["dashed", "hidden"] = "dashed",
) -> list[Axes]:
    """Dense network, then unstructured (``masks``) and/or structured (``removed_units`` /
    ``kept_units``) pruning of the same weights, side by side (the poster's Figure 1)."""
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, Any]]] = [("dense", {})]
    if masks is not None:
        panels.append(("unstructured: weights removed", {"masks": masks}))
    if removed_units is not None or kept_units is not None:
        panels.append(
            (
                "structured: neurons removed",
                {"removed_units": removed_units, "kept_units": kept_units},
            )
        )
    if axes is None:
        _, axes_arr = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
        axes = list(np.atleast_1d(axes_arr))
    if len(axes) != len(panels):
        raise ValueError(f"need {len(panels)} axes, got {len(axes)}")
    for ax, (title, kw) in zip(axes, panels, strict=True):
        draw_network(model, ax=ax, title=title, pruned_style=pruned_style, **kw)
    return list(axes)
