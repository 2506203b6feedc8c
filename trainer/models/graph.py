"""Adjacency matrices of the mp75 skeleton graph for the graph convolutions (numpy only).

Two partition strategies, as in ST-GCN (Yan et al. 2018):

- ``uniform`` (K = 1): ``D^-1/2 (A + I) D^-1/2``, the symmetric normalised adjacency with
  self loops.
- ``spatial`` (K = 3): the same normalised matrix split into the root itself (and
  neighbours as far from the centre as the root), the neighbours closer to the body centre (centripetal) and those farther from it
  (centrifugal), by hop distance from the layout's centre joints (the shoulders).

Returned matrices are already *transposed for a right multiplication*: a graph step is
``x @ A[k]`` with ``x`` of shape ``(..., V)``, so ``y[..., i] = sum_j x[..., j] A[k, j, i]``
aggregates into joint ``i`` from its neighbours ``j``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edge.core.layout import MP75, Layout

PARTITIONS = ("uniform", "spatial")


def hop_distance(layout: Layout, sources: tuple[int, ...]) -> np.ndarray:
    """``(V,)`` hops from the nearest of ``sources`` along the layout's edges."""
    n = layout.num_joints
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for i, j in layout.edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    dist = np.full(n, -1, dtype=np.int64)
    q = deque(sources)
    for s in sources:
        dist[s] = 0
    while q:
        u = q.popleft()
        for v in nbrs[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist


def normalized_adjacency(layout: Layout = MP75) -> np.ndarray:
    """``(V, V)`` symmetric ``D^-1/2 (A + I) D^-1/2``."""
    a = layout.adjacency() + np.eye(layout.num_joints, dtype=np.float32)
    d = 1.0 / np.sqrt(a.sum(1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


def partitioned_adjacency(strategy: str = "spatial", layout: Layout = MP75) -> np.ndarray:
    """``(K, V, V)`` adjacency stack for ``x @ A[k]`` (see the module docstring).

    Raises:
        ValueError: for an unknown ``strategy``.
    """
    an = normalized_adjacency(layout)
    if strategy == "uniform":
        return an[None].copy()
    if strategy != "spatial":
        raise ValueError(f"unknown graph partition {strategy!r}; known: {list(PARTITIONS)}")
    dist = hop_distance(layout, layout.center)
    # an[i, j]: joint i receives from joint j. Split by where j lies relative to i.
    recv, send = np.nonzero(an)
    parts = np.zeros((3,) + an.shape, dtype=np.float32)
    for i, j in zip(recv, send):
        # As in ST-GCN, neighbours at the root's own distance join the root group.
        k = 0 if dist[j] == dist[i] else (1 if dist[j] < dist[i] else 2)
        parts[k, i, j] = an[i, j]
    # Transpose for x @ A: y[..., i] = sum_j x[..., j] * A[j, i] = sum_j an[i, j] x_j.
    return np.ascontiguousarray(parts.transpose(0, 2, 1))
