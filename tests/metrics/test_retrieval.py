"""Retrieval and zero-shot metrics on hand-made similarity matrices with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundstage.metrics.retrieval import (
    confusion_matrix,
    map_at_k,
    nearest_class,
    ranking,
    recall_at_k,
    relevance_from_labels,
    retrieval_metrics,
    zero_shot_accuracy,
)

# Three queries, four items. Query 0's item is ranked 1st, query 1's 3rd, query 2's 4th.
SIMILARITY = np.array([
    [0.9, 0.1, 0.2, 0.3],
    [0.8, 0.7, 0.1, 0.75],
    [0.5, 0.6, 0.4, 0.1],
])
RELEVANT = np.array([
    [True, False, False, False],
    [False, True, False, False],
    [False, False, False, True],
])


def test_recall_at_k_counts_queries_with_a_hit_in_the_top_k() -> None:
    assert recall_at_k(SIMILARITY, RELEVANT, 1) == pytest.approx(1 / 3)
    assert recall_at_k(SIMILARITY, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(SIMILARITY, RELEVANT, 3) == pytest.approx(2 / 3)
    assert recall_at_k(SIMILARITY, RELEVANT, 4) == pytest.approx(1.0)
    assert recall_at_k(torch.tensor(SIMILARITY), torch.tensor(RELEVANT), 10) == 1.0  # k beyond the database


def test_map_at_k_is_reciprocal_rank_for_one_relevant_item() -> None:
    assert map_at_k(SIMILARITY, RELEVANT, k=10) == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)
    assert map_at_k(SIMILARITY, RELEVANT, k=3) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_map_at_k_with_several_relevant_items() -> None:
    similarity = np.array([[0.9, 0.8, 0.7, 0.6]])
    relevant = np.array([[True, False, True, False]])  # hits at ranks 1 and 3
    assert map_at_k(similarity, relevant, k=10) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert map_at_k(similarity, relevant, k=1) == pytest.approx(1.0)  # divided by min(relevant, k) = 1


def test_ties_keep_database_order_and_bundle() -> None:
    assert ranking(np.array([[0.5, 0.5, 0.9]])).tolist() == [[2, 0, 1]]
    metrics = retrieval_metrics(SIMILARITY, RELEVANT)
    assert set(metrics) == {"R@1", "R@5", "R@10", "mAP@10"}


def test_relevance_from_labels_and_shape_checks() -> None:
    relevant = relevance_from_labels(["dog", "cat"], ["cat", "dog", "dog"])
    assert relevant.tolist() == [[False, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="at least one relevant"):
        recall_at_k(np.zeros((1, 2)), np.zeros((1, 2), dtype=bool), 1)
    with pytest.raises(ValueError, match="must be equal"):
        map_at_k(np.zeros((1, 2)), np.ones((2, 2), dtype=bool))


def test_zero_shot_accuracy_skips_clips_without_a_class() -> None:
    similarity = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    assert nearest_class(similarity).tolist() == [0, 1, 0, 0]
    assert zero_shot_accuracy(similarity, [0, 1, 1, -1]) == pytest.approx(2 / 3)
    assert math.isnan(zero_shot_accuracy(similarity, [-1, -1, -1, -1]))
    with pytest.raises(ValueError):
        zero_shot_accuracy(similarity, [0, 1])


def test_confusion_matrix_rows_are_true_classes() -> None:
    matrix = confusion_matrix([0, 1, 0, 1, 1], [0, 1, 1, -1, 1], num_classes=2)
    assert matrix.tolist() == [[1, 0], [1, 2]]
