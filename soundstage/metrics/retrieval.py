"""Retrieval and zero-shot classification metrics on embedding similarities.

Conventions: ``similarity`` is ``(Q, D)`` (queries x database items, larger = closer) and ``relevant`` a bool
``(Q, D)`` matrix of the items that count as hits for each query, so several correct answers per query are allowed
(e.g. every rendering of one source for its non-spatial caption). Ties are broken by database order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _as_numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check(similarity: np.ndarray, relevant: np.ndarray) -> None:
    if similarity.ndim != 2 or similarity.shape != relevant.shape:
        raise ValueError(f"similarity {similarity.shape} and relevant {relevant.shape} must be equal (Q, D) matrices")
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one relevant item")


def ranking(similarity: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(Q, D)`` database indices of each query sorted best first (stable: ties keep database order)."""
    return np.argsort(-_as_numpy(similarity), axis=1, kind="stable")


def relevance_from_labels(query_labels: Sequence, item_labels: Sequence) -> np.ndarray:
    """``(Q, D)`` bool: item j is relevant to query i when their labels are equal (e.g. caption strings)."""
    q, d = np.asarray(query_labels, dtype=object), np.asarray(item_labels, dtype=object)
    return q[:, None] == d[None, :]


def recall_at_k(similarity: torch.Tensor | np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Share of queries with at least one relevant item among their top ``k`` (the CLAP/ELSA R@k)."""
    sim, rel = _as_numpy(similarity), _as_numpy(relevant).astype(bool)
    _check(sim, rel)
    top = ranking(sim)[:, :k]
    return float(np.take_along_axis(rel, top, axis=1).any(axis=1).mean())


def map_at_k(similarity: torch.Tensor | np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Mean over queries of average precision at ``k``: sum of precision@i at each hit i <= k, divided by
    min(number of relevant items, k). With one relevant item this is 1 / rank (0 beyond rank k)."""
    sim, rel = _as_numpy(similarity), _as_numpy(relevant).astype(bool)
    _check(sim, rel)
    hits = np.take_along_axis(rel, ranking(sim)[:, :k], axis=1).astype(np.float64)  # (Q, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denominator = np.minimum(rel.sum(axis=1), k)
    return float(((precision * hits).sum(axis=1) / denominator).mean())


def retrieval_metrics(
    similarity: torch.Tensor | np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, float]:
    """``R@k`` for each k and ``mAP@map_k`` in one dict, e.g. ``{"R@1": .., "R@5": .., "R@10": .., "mAP@10": ..}``."""
    out = {f"R@{k}": recall_at_k(similarity, relevant, k) for k in ks}
    out[f"mAP@{map_k}"] = map_at_k(similarity, relevant, map_k)
    return out


def nearest_class(similarity: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(N,)`` index of the most similar class for each row of an ``(N, C)`` similarity matrix."""
    return np.argmax(_as_numpy(similarity), axis=1)


def zero_shot_accuracy(similarity: torch.Tensor | np.ndarray, labels: Sequence[int]) -> float:
    """Accuracy of nearest-class prediction over the rows with a class (label >= 0); NaN when none has one.

    Args:
        similarity: ``(N, C)`` similarity of each clip to each class prototype (probe embedding).
        labels: ``(N,)`` true class indices, -1 for clips that belong to no class (e.g. between two directions).
    """
    sim, lab = _as_numpy(similarity), _as_numpy(labels).astype(np.int64)
    if sim.ndim != 2 or lab.shape != (sim.shape[0],):
        raise ValueError(f"need similarity (N, C) and labels (N,), got {sim.shape} and {lab.shape}")
    keep = lab >= 0
    if not keep.any():
        return float("nan")
    return float((nearest_class(sim[keep]) == lab[keep]).mean())


def confusion_matrix(predicted: Sequence[int], labels: Sequence[int], num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted class; rows with label < 0 are skipped."""
    pred, lab = _as_numpy(predicted).astype(np.int64), _as_numpy(labels).astype(np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    keep = lab >= 0
    np.add.at(matrix, (lab[keep], pred[keep]), 1)
    return matrix
