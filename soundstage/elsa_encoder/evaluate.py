"""Evaluate an ELSA model on one split of an FOA dataset: retrieval, zero-shot spatial classification, localization
from the heads, direction swapping by embedding arithmetic, and a 2-D map of the embeddings.

``evaluate_elsa`` prints a table, writes ``elsa_eval.json`` and PNG plots to ``out_dir`` and returns the metrics.

- Retrieval, text->audio and audio->text, R@1/5/10 and mAP@10, once with the spatial captions and once with the
  non-spatial (semantic) captions. Identical captions are one query whose relevant items are all their clips.
- Zero-shot classification (direction 4 classes, distance, elevation, room size, reverberation): every clip takes the
  class of its most similar text prototype (:mod:`soundstage.elsa_encoder.probes`); accuracy over clips that have a
  class; confusion matrices.
- Localization from the regression heads: great-circle error (mean, median; degrees), distance error (metres), and
  floor-area and T30 errors.
- Direction swap (ELSA section 5.4): ``normalize(a - p(source) + p(target))`` with direction prototypes ``p``,
  judged by a 2-layer MLP direction classifier fitted on training-split audio embeddings; and a SALM-style edit that
  replaces the audio embedding's component in the span of the (centred) direction prototypes by the target's. For
  both, the change of text->audio R@10 with non-spatial captions measures what the edit does to the semantics.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from soundstage.common.audio import load_audio
from soundstage.data.manifest import read_manifest
from soundstage.metrics.retrieval import (
    confusion_matrix,
    nearest_class,
    relevance_from_labels,
    retrieval_metrics,
    zero_shot_accuracy,
)
from soundstage.metrics.spatial_metrics import localization_summary

from .model import ELSA
from .probes import ATTRIBUTE_CLASSES, attribute_label, class_prototypes

logger = logging.getLogger(__name__)

RESULTS_NAME = "elsa_eval.json"
_DIRECTIONS = ATTRIBUTE_CLASSES["direction"]


# ----------------------------------------------------------------------------------------------------------------
# Embedding a split
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_split(
    model: ELSA, data_dir: Path, records: list[dict[str, Any]], max_seconds: float = 10.0, batch_size: int = 16,
    desc: str = "embed audio",
) -> torch.Tensor:
    """``(N, D)`` audio embeddings of whole clips (cut to ``max_seconds``); clips of equal length share a batch.

    ``desc`` labels the progress bar (one step per clip).
    """
    sample_rate = model.config.sample_rate
    limit = int(max_seconds * sample_rate)
    by_length: dict[int, list[int]] = defaultdict(list)
    lengths = [min(round(r["num_frames"] * sample_rate / r["sample_rate"]), limit) for r in records]
    for i, n in enumerate(lengths):
        by_length[n].append(i)
    out = torch.zeros(len(records), model.config.embed_dim)
    chunks = [indices[start : start + batch_size] for indices in by_length.values()
              for start in range(0, len(indices), batch_size)]
    with tqdm(total=len(records), desc=desc, unit="clip") as bar:
        for chunk in chunks:
            clips = [load_audio(data_dir / records[i]["path"], sample_rate=sample_rate, channels=4)[0][:, :limit]
                     for i in chunk]
            shortest = min(c.shape[-1] for c in clips)  # the manifest's num_frames may differ by a resampling sample
            batch = torch.from_numpy(np.stack([c[:, :shortest] for c in clips]))
            out[chunk] = model.embed_audio(batch, sample_rate).cpu()
            bar.update(len(chunk))
    return out


@torch.no_grad()
def embed_texts(model: ELSA, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    chunks = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return torch.cat([model.embed_text(chunk).cpu() for chunk in tqdm(chunks, desc="embed captions", unit="batch")])


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------


def retrieval_both_ways(audio: torch.Tensor, texts: Sequence[str], text_embeddings: dict[str, torch.Tensor]) -> dict:
    """Text->audio and audio->text metrics; ``texts[i]`` is clip i's caption, ``text_embeddings`` maps each unique
    caption to its embedding."""
    unique = list(dict.fromkeys(texts))
    queries = torch.stack([text_embeddings[t] for t in unique])
    similarity = (queries @ audio.T).numpy()  # (U, N)
    relevant = relevance_from_labels(unique, texts)
    return {
        "text_to_audio": retrieval_metrics(similarity, relevant),
        "audio_to_text": retrieval_metrics(similarity.T, relevant.T),
        "queries": len(unique),
    }


def direction_edit_projection(prototypes: torch.Tensor) -> torch.Tensor:
    """``(D, D)`` orthogonal projection onto the span of the centred direction prototypes (the 'spatial part')."""
    centred = prototypes - prototypes.mean(0, keepdim=True)
    basis, singular, _ = torch.linalg.svd(centred.T, full_matrices=False)
    basis = basis[:, singular > 1e-6 * singular.max()]
    return basis @ basis.T


def swap_direction(audio: torch.Tensor, prototypes: torch.Tensor, source: np.ndarray, target: np.ndarray,
                   method: str) -> torch.Tensor:
    """Edited unit embeddings: ``"elsa"`` subtracts the source prototype and adds the target's; ``"salm"`` replaces
    the component in the direction subspace by the target prototype's."""
    src, tgt = prototypes[torch.as_tensor(source)], prototypes[torch.as_tensor(target)]
    if method == "elsa":
        edited = audio - src + tgt
    elif method == "salm":
        projection = direction_edit_projection(prototypes)
        edited = audio - audio @ projection + tgt @ projection
    else:
        raise ValueError(f"unknown edit method {method!r}; use 'elsa' or 'salm'")
    return F.normalize(edited, dim=-1)


def fit_direction_classifier(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> Any:
    """A 2-layer MLP (one hidden layer of 256, on standardised inputs) on unit audio embeddings -> direction class."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep = labels >= 0
    if len(np.unique(labels[keep])) < 2:
        raise ValueError("the training split needs clips of at least two direction classes for the swap classifier")
    classifier = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(256,), max_iter=400, random_state=seed)
    )
    classifier.fit(embeddings[keep], labels[keep])
    return classifier


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusions(confusions: dict[str, np.ndarray], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(confusions), figsize=(3.6 * len(confusions), 3.6), squeeze=False)
    for ax, (attribute, matrix) in zip(axes[0], confusions.items()):
        classes = ATTRIBUTE_CLASSES[attribute]
        rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        ax.imshow(rows, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color="white" if rows[i, j] > 0.5 else "k")
        short = [c.replace("acoustically ", "").replace("highly ", "") for c in classes]
        ax.set_xticks(range(len(classes)), short, rotation=30)
        ax.set_yticks(range(len(classes)), short)
        ax.set(title=attribute, xlabel="predicted", ylabel="true")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_embedding_map(audio: np.ndarray, text: np.ndarray, labels: np.ndarray, path: Path, seed: int = 0) -> Path:
    """t-SNE (PCA for fewer than 10 clips) of audio (dots) and spatial-caption (crosses) embeddings, by direction."""
    plt = _pyplot()
    points = np.concatenate([audio, text])
    if len(points) >= 20:
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30.0, (len(points) - 1) / 3), init="pca", random_state=seed)\
            .fit_transform(points)
        method = "t-SNE"
    else:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(points)
        method = "PCA"
    n = len(audio)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colours = plt.get_cmap("tab10")
    for c, name in enumerate(_DIRECTIONS):
        mask = labels == c
        ax.scatter(*xy[:n][mask].T, s=12, color=colours(c), label=f"audio: {name}")
        ax.scatter(*xy[n:][mask].T, s=22, marker="x", color=colours(c), label=f"text: {name}")
    ax.set(title=f"ELSA embeddings ({method}), coloured by direction")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_localization(true_az: np.ndarray, pred_az: np.ndarray, true_d: np.ndarray, pred_d: np.ndarray,
                      path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    axes[0].scatter(true_az, pred_az, s=8)
    axes[0].plot([-180, 180], [-180, 180], "k--", lw=0.8)
    axes[0].set(xlabel="true azimuth (deg)", ylabel="predicted azimuth (deg)", title="azimuth (head)")
    axes[1].scatter(true_d, pred_d, s=8)
    axes[1].plot([0.5, 4.0], [0.5, 4.0], "k--", lw=0.8)
    axes[1].set(xlabel="true distance (m)", ylabel="predicted distance (m)", title="distance (head)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def evaluate_elsa(
    model: ELSA | str | Path,
    data_dir: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    max_train_clips: int = 1500,
    max_seconds: float = 10.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate ``model`` (an :class:`ELSA`, a model folder or a bundled preset name) on ``split`` of ``data_dir``.

    Args:
        out_dir: where ``elsa_eval.json`` and the plots go (default ``./elsa_eval_<split>``).
        max_train_clips: training-split clips embedded to fit the swap classifier (a seeded random subset).

    Returns:
        The metrics written to ``elsa_eval.json``, with the paths of the files written (``results_json``,
        ``plots``).
    """
    if not isinstance(model, ELSA):
        model = ELSA.from_pretrained(model)
    model.eval()
    data_dir = Path(data_dir)
    out = Path(out_dir) if out_dir is not None else Path.cwd() / f"elsa_eval_{split}"
    out.mkdir(parents=True, exist_ok=True)
    all_records = read_manifest(data_dir, spatial=True)
    records = [r for r in all_records if r["split"] == split]
    if not records:
        raise ValueError(f"{data_dir}: no clips in split {split!r}")

    audio = embed_split(model, data_dir, records, max_seconds, desc=f"embed {split} clips")
    with torch.no_grad():
        predicted = {k: v.cpu().numpy() for k, v in model.spatial_from_embedding(audio).items()}
    spatial_texts = [r["spatial_caption"] for r in records]
    semantic_texts = [r["caption"] for r in records]
    unique_texts = list(dict.fromkeys(spatial_texts + semantic_texts))
    text_table = dict(zip(unique_texts, embed_texts(model, unique_texts)))

    results: dict[str, Any] = {"split": split, "clips": len(records), "data": str(data_dir)}
    results["retrieval"] = {
        "spatial_captions": retrieval_both_ways(audio, spatial_texts, text_table),
        "nonspatial_captions": retrieval_both_ways(audio, semantic_texts, text_table),
    }

    # Zero-shot classification.
    zero_shot, confusions = {}, {}
    prototypes = {a: class_prototypes(model, a).cpu() for a in ATTRIBUTE_CLASSES}
    for attribute, classes in ATTRIBUTE_CLASSES.items():
        labels = np.array([attribute_label(attribute, r) for r in records])
        similarity = (audio @ prototypes[attribute].T).numpy()
        confusions[attribute] = confusion_matrix(nearest_class(similarity), labels, len(classes))
        zero_shot[attribute] = {
            "accuracy": zero_shot_accuracy(similarity, labels),
            "clips": int((labels >= 0).sum()),
            "classes": list(classes),
            "confusion": confusions[attribute].tolist(),
        }
    results["zero_shot"] = zero_shot

    # Localization from the heads.
    truth = {k: np.array([float(r[k]) for r in records]) for k in
             ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")}
    results["localization"] = localization_summary(
        predicted["azimuth_deg"], predicted["elevation_deg"], truth["azimuth_deg"], truth["elevation_deg"],
        predicted["distance_m"], truth["distance_m"],
    )
    for name in ("floor_area_m2", "t30_s"):
        error = np.abs(predicted[name] - truth[name])
        results["localization"][f"{name}_abs_error_median"] = float(np.median(error))
        results["localization"][f"{name}_rel_error_median"] = float(np.median(error / truth[name]))

    # Direction swap.
    results["direction_swap"] = _direction_swap(model, data_dir, all_records, records, audio, prototypes["direction"],
                                                semantic_texts, text_table, max_train_clips, max_seconds, seed)

    # Plots.
    direction_labels = np.array([attribute_label("direction", r) for r in records])
    text_spatial = torch.stack([text_table[t] for t in spatial_texts]).numpy()
    plots = {
        "confusion": plot_confusions(confusions, out / "zero_shot_confusion.png"),
        "embedding_map": plot_embedding_map(audio.numpy(), text_spatial, direction_labels, out / "embedding_map.png",
                                            seed),
        "localization": plot_localization(truth["azimuth_deg"], predicted["azimuth_deg"], truth["distance_m"],
                                          predicted["distance_m"], out / "localization.png"),
    }
    results["plots"] = {k: str(v) for k, v in plots.items()}
    results["results_json"] = str(out / RESULTS_NAME)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    return results


def _direction_swap(
    model: ELSA, data_dir: Path, all_records: list[dict[str, Any]], records: list[dict[str, Any]],
    audio: torch.Tensor, prototypes: torch.Tensor, semantic_texts: list[str], text_table: dict[str, torch.Tensor],
    max_train_clips: int, max_seconds: float, seed: int,
) -> dict[str, Any]:
    train = [r for r in all_records if r["split"] == "train"]
    if not train:
        return {"skipped": "no train split to fit the direction classifier"}
    rng = np.random.default_rng(seed)
    if len(train) > max_train_clips:
        train = [train[i] for i in sorted(rng.choice(len(train), max_train_clips, replace=False))]
    train_audio = embed_split(model, data_dir, train, max_seconds, desc="embed train clips (swap classifier)").numpy()
    train_labels = np.array([attribute_label("direction", r) for r in train])
    try:
        classifier = fit_direction_classifier(train_audio, train_labels, seed)
    except ValueError as exc:
        return {"skipped": str(exc)}
    labels = np.array([attribute_label("direction", r) for r in records])
    keep = np.flatnonzero(labels >= 0)
    if len(keep) == 0:
        return {"skipped": "no test clip has a direction class"}
    result: dict[str, Any] = {
        "clips": len(keep),
        "classifier_train_clips": int((train_labels >= 0).sum()),
        "classifier_accuracy_unedited": float((classifier.predict(audio[keep].numpy()) == labels[keep]).mean()),
    }
    subset_texts = [semantic_texts[i] for i in keep]
    base = retrieval_both_ways(audio[keep], subset_texts, text_table)["text_to_audio"]["R@10"]
    result["nonspatial_t2a_R@10_unedited"] = base
    num = len(_DIRECTIONS)
    for method in ("elsa", "salm"):
        correct, total, recalls = 0, 0, []
        for shift in range(1, num):
            target = (labels[keep] + shift) % num
            edited = swap_direction(audio[keep], prototypes, labels[keep], target, method)
            correct += int((classifier.predict(edited.numpy()) == target).sum())
            total += len(keep)
            recalls.append(retrieval_both_ways(edited, subset_texts, text_table)["text_to_audio"]["R@10"])
        result[method] = {
            "swap_accuracy": correct / total,
            "nonspatial_t2a_R@10_edited": float(np.mean(recalls)),
            "nonspatial_t2a_R@10_change": float(np.mean(recalls) - base),
        }
    return result


def format_table(results: dict[str, Any]) -> str:
    """A plain-text summary table of :func:`evaluate_elsa` results."""
    lines = [f"ELSA evaluation: {results['clips']} {results['split']} clips", ""]
    lines.append(f"{'retrieval':<34}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'mAP@10':>8}")
    for captions, block in results["retrieval"].items():
        for direction in ("text_to_audio", "audio_to_text"):
            m = block[direction]
            name = f"{direction.replace('_to_', '->').replace('text', 't').replace('audio', 'a')} {captions}"
            lines.append(f"{name:<34}{m['R@1']:>8.3f}{m['R@5']:>8.3f}{m['R@10']:>8.3f}{m['mAP@10']:>8.3f}")
    lines += ["", f"{'zero-shot':<34}{'accuracy':>10}{'clips':>8}"]
    for attribute, m in results["zero_shot"].items():
        accuracy = "n/a" if math.isnan(m["accuracy"]) else f"{m['accuracy']:.3f}"
        lines.append(f"{attribute:<34}{accuracy:>10}{m['clips']:>8}")
    loc = results["localization"]
    lines += [
        "",
        f"{'localization (heads)':<34}{'mean':>10}{'median':>10}",
        f"{'great-circle error (deg)':<34}{loc['angle_error_mean_deg']:>10.2f}{loc['angle_error_median_deg']:>10.2f}",
        f"{'distance error (m)':<34}{loc['distance_error_mean_m']:>10.3f}{loc['distance_error_median_m']:>10.3f}",
    ]
    swap = results["direction_swap"]
    if "skipped" in swap:
        lines += ["", f"direction swap: skipped ({swap['skipped']})"]
    else:
        lines += ["", f"{'direction swap':<34}{'accuracy':>10}{'dR@10 (non-spatial)':>22}",
                  f"{'classifier, unedited':<34}{swap['classifier_accuracy_unedited']:>10.3f}"]
        for method in ("elsa", "salm"):
            m = swap[method]
            lines.append(f"{method + ' edit':<34}{m['swap_accuracy']:>10.3f}{m['nonspatial_t2a_R@10_change']:>+22.3f}")
    return "\n".join(lines)
