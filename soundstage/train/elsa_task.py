"""ELSA training task for the shared loop (:func:`soundstage.train.trainer.run_training`).

CPU training is made cheap by caching, in the run folder, everything that does not change between steps: whole-clip
audio features (log-mel of W and band intensity vectors, computed from :class:`soundstage.data.dataset.FOAClips`)
and the frozen text model's features of every caption the stream can draw. A step then only crops frames and runs
the CNNs.

Items are a pure function of ``(seed, stream index)``, as the loop's exact resume requires. A share is non-spatial
(W alone, which has zero intensity, with the plain caption and NaN labels); spatial views get a random crop, a random
quarter-turn yaw (exact on intensity vectors; the azimuth label moves and the caption is regenerated) and a random
gain. Each item carries several views of one sound as in-batch hard negatives that differ only in space
(:class:`ELSAFeatureDataset`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from soundstage.data import captions as cap
from soundstage.data.dataset import LABEL_KEYS, FOAClips, centre_offset, crop_or_pad, random_offset
from soundstage.elsa_encoder import ELSA, ELSAConfig, elsa_loss, elsa_preset
from soundstage.elsa_encoder.features import LOG_EPS, FOAFeatures, rotate_intensity
from soundstage.elsa_encoder.loss import contrastive_loss
from soundstage.elsa_encoder.probes import attribute_label, class_prototypes, probe_texts
from soundstage.foa import angle_between_deg, direction_vector, wrap_degrees
from soundstage.metrics.retrieval import recall_at_k, relevance_from_labels, zero_shot_accuracy

from .trainer import TrainConfig

logger = logging.getLogger(__name__)

# Per-preset TrainConfig values. batch_size counts items of ELSADataConfig.views (3) views each: tiny 4 x 3,
# small 12 x 3 = 36 pairs per step.
ELSA_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": dict(max_steps=20, batch_size=4, learning_rate=1e-3, warmup_steps=2, log_every=5, validate_every=10,
                 checkpoint_every=10, ema_decay=0.9),
    "small": dict(max_steps=2400, batch_size=12, learning_rate=1e-3, weight_decay=0.01, warmup_steps=150,
                  log_every=25, validate_every=300, checkpoint_every=150, ema_decay=0.995),
    "paper": dict(max_steps=100_000, batch_size=96, learning_rate=5e-4, weight_decay=0.01, warmup_steps=2000,
                  log_every=50, validate_every=2000, checkpoint_every=1000, ema_decay=0.9999),
}


@dataclass(frozen=True)
class ELSADataConfig:
    """How training items are drawn from the cached features."""

    crop_seconds: float = 4.0
    nonspatial_share: float = 0.2  # ELSA mixes non-spatial pairs so the space also holds sounds without direction
    yaw_rotations: bool = True  # quarter turns: intensity rotates exactly and the caption is regenerated
    caption_variants: int = 2  # spatial-caption phrasings per (clip, rotation); the manifest's caption is one
    gain_db: float = 6.0  # random level change in [-gain_db, +gain_db] dB
    max_seconds: float = 10.0  # longer clips are cut to this many seconds before caching
    valid_clips: int = 256  # fixed validation subset (first clips of the valid split)
    # Views per item (1-3): the clip, the clip turned by another quarter turn, another rendering of the same source
    # (see ELSAFeatureDataset). TrainConfig.batch_size counts items, so a batch holds batch_size * views pairs.
    views: int = 3

    def __post_init__(self) -> None:
        if self.crop_seconds <= 0 or self.max_seconds <= 0:
            raise ValueError("crop_seconds and max_seconds must be positive")
        if not 0.0 <= self.nonspatial_share < 1.0:
            raise ValueError(f"nonspatial_share must be in [0, 1), got {self.nonspatial_share}")
        if self.caption_variants < 1 or self.valid_clips < 1:
            raise ValueError("caption_variants and valid_clips must be >= 1")
        if not 1 <= self.views <= 3:
            raise ValueError(f"views must be 1, 2 or 3, got {self.views}")


ELSA_DATA_DEFAULTS: dict[str, ELSADataConfig] = {
    "tiny": ELSADataConfig(crop_seconds=1.0, caption_variants=1, valid_clips=16),
    "small": ELSADataConfig(),
    "paper": ELSADataConfig(crop_seconds=10.0, caption_variants=4, valid_clips=1024),
}


# ----------------------------------------------------------------------------------------------------------------
# Feature caches
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SplitFeatures:
    """Whole-clip features of one split, concatenated along frames (float16 to halve memory)."""

    records: list[dict[str, Any]]
    logmel: np.ndarray  # (M, total_frames)
    intensity: np.ndarray  # (6, M, total_frames)
    offsets: np.ndarray  # (num_clips + 1,) frame offsets

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, i: int, start: int = 0, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logmel ``(M, F)``, intensity ``(6, M, F)``) float32 of clip ``i`` from frame ``start``; zero-padded
        (silence: ln(1e-8) and zero intensity) to ``frames`` when the clip is shorter."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        frames = hi - lo if frames is None else frames
        logmel = crop_or_pad(self.logmel[:, lo:hi], frames, start, fill=math.log(LOG_EPS))
        intensity = crop_or_pad(self.intensity[..., lo:hi], frames, start)
        return torch.from_numpy(logmel), torch.from_numpy(intensity)

    def frames(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])


def _feature_key(config: ELSAConfig, manifest: Path, split: str, max_seconds: float) -> str:
    fields = {k: getattr(config, k) for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")}
    digest = hashlib.sha1(manifest.read_bytes())
    digest.update(json.dumps({**fields, "split": split, "max_seconds": max_seconds, "v": 1}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cached_split_features(
    config: ELSAConfig, data_dir: Path, split: str, cache_dir: Path, max_seconds: float = 10.0
) -> SplitFeatures:
    """Features of every clip of ``split``, computed once and stored under ``cache_dir`` (keyed by the manifest's
    content and the feature settings, written atomically)."""
    clips = FOAClips(data_dir, split, config.sample_rate)
    key = _feature_key(config, clips.folder / "manifest.jsonl", split, max_seconds)
    folder = Path(cache_dir) / f"features-{split}-{key}"
    if not (folder / "offsets.npy").exists():
        extractor = FOAFeatures(config)
        logmels, intensities, offsets = [], [], [0]
        limit = int(max_seconds * config.sample_rate)
        for i in tqdm(range(len(clips)), desc=f"ELSA features ({split})", leave=False):
            audio = clips.audio(i)[:, :limit]
            if audio.shape[-1] < config.n_fft:
                audio = np.pad(audio, ((0, 0), (0, config.n_fft - audio.shape[-1])))
            with torch.no_grad():
                logmel, intensity = extractor(torch.from_numpy(audio).unsqueeze(0))
            logmels.append(logmel[0].numpy().astype(np.float16))
            intensities.append(intensity[0].numpy().astype(np.float16))
            offsets.append(offsets[-1] + logmel.shape[-1])
        tmp = folder.with_name(folder.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "logmel.npy", np.concatenate(logmels, axis=-1))
        np.save(tmp / "intensity.npy", np.concatenate(intensities, axis=-1))
        np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return SplitFeatures(
        clips.records, np.load(folder / "logmel.npy"), np.load(folder / "intensity.npy"), np.load(folder / "offsets.npy")
    )


def cached_text_features(model: ELSA, texts: Sequence[str], cache_dir: Path) -> np.ndarray:
    """``(len(texts), text_dim)`` float32 frozen text-model features, stored under ``cache_dir`` once computed."""
    encoder = model.text_encoder
    digest = hashlib.sha1(f"{encoder.name}|{encoder.max_length}|{encoder.normalize}".encode())
    digest.update("\n".join(texts).encode())
    path = Path(cache_dir) / f"text-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    chunks = []
    for start in tqdm(range(0, len(texts), 256), desc="text features", leave=False):
        chunks.append(encoder.encode(list(texts[start : start + 256])).numpy())
    features = np.concatenate(chunks).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.npy")
    np.save(tmp, features)
    os.replace(tmp, path)
    return features


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------


def rotated_caption(record: dict[str, Any], quarter_turns: int, variant: int, seed: int, clip_index: int) -> str:
    """Spatial caption of ``record`` turned by ``90 * quarter_turns`` degrees of yaw, in phrasing ``variant``
    (turn 0, variant 0 is the manifest's own caption); the phrasing is drawn from ``(seed, clip_index, turn,
    variant)``."""
    if quarter_turns == 0 and variant == 0:
        return record["spatial_caption"]
    return cap.spatial_caption(
        record["caption"],
        wrap_degrees(record["azimuth_deg"] + 90.0 * quarter_turns),
        record["elevation_deg"],
        record["distance_m"],
        record["floor_area_m2"],
        record["t30_s"],
        rng=np.random.default_rng((seed, clip_index, quarter_turns, variant)),
    )


class ELSAFeatureDataset(Dataset):
    """Training items on cached features (see the module docstring); ``dataset[i]`` for any stream index ``i``.

    Each item holds ``V = data.views`` views of one sound, so that every batch carries hard negatives that differ
    only in space: view 0 is the clip (non-spatial with probability ``nonspatial_share``), view 1 the same crop turned
    by another quarter turn (its caption differs only in the direction word), view 2 another rendering of the same
    source (another room, distance and direction) when the dataset has one, else a third turn. Without such views a
    small batch of distinct sounds is told apart by semantics alone and the captions' spatial words are never needed.

    Per view (stacked on a leading axis of size V): ``logmel`` ``(M, crop)``, ``intensity`` ``(6, M, crop)``,
    ``caption`` (str), ``caption_group`` (index of the caption text: equal captions are positives of each other),
    ``text_features`` ``(text_dim,)`` when the text model is frozen, ``is_spatial`` and the labels of
    :data:`soundstage.data.dataset.LABEL_KEYS` (NaN when non-spatial). :func:`collate_views` flattens the views
    into the batch.
    """

    def __init__(
        self,
        features: SplitFeatures,
        data: ELSADataConfig,
        model_config: ELSAConfig,
        seed: int,
        text_features: np.ndarray | None,
        texts: list[str],
        spatial_caption_index: np.ndarray,
        semantic_caption_index: np.ndarray,
    ) -> None:
        self.features, self.data, self.seed = features, data, seed
        self.crop_frames = max(model_config.min_frames, round(data.crop_seconds * model_config.sample_rate
                                                              / model_config.hop_length))
        self.text_features = None if text_features is None else torch.from_numpy(text_features)
        self.texts = texts
        self.spatial_caption_index = spatial_caption_index  # (N, turns, variants)
        self.semantic_caption_index = semantic_caption_index  # (N,)
        by_source: dict[str, list[int]] = {}
        for i, record in enumerate(features.records):
            by_source.setdefault(str(record.get("source_clip", record["caption"])), []).append(i)
        self.siblings = [[j for j in by_source[str(r.get("source_clip", r["caption"]))] if j != i]
                         for i, r in enumerate(features.records)]

    def __len__(self) -> int:
        return len(self.features)

    def _view(self, i: int, start: int, turns: int, spatial: bool, rng: np.random.Generator) -> dict[str, Any]:
        record = self.features.records[i]
        logmel, intensity = self.features.clip(i, start, self.crop_frames)
        gain = float(rng.uniform(-self.data.gain_db, self.data.gain_db))
        variant = int(rng.integers(self.spatial_caption_index.shape[2]))
        logmel = logmel + gain * math.log(10.0) / 10.0  # a power gain in dB is an offset of ln(power)
        if spatial:
            intensity = rotate_intensity(intensity, 90.0 * turns)
            labels = {k: float(record[k]) for k in LABEL_KEYS}
            labels["azimuth_deg"] = wrap_degrees(labels["azimuth_deg"] + 90.0 * turns)
            text_index = int(self.spatial_caption_index[i, turns, variant])
        else:
            intensity = torch.zeros_like(intensity)  # W alone: an omnidirectional field has no intensity
            labels = {k: math.nan for k in LABEL_KEYS}
            text_index = int(self.semantic_caption_index[i])
        view: dict[str, Any] = {
            "logmel": logmel,
            "intensity": intensity,
            "caption": self.texts[text_index],
            "caption_group": torch.tensor(text_index),
            "is_spatial": torch.tensor(spatial),
        }
        if self.text_features is not None:
            view["text_features"] = self.text_features[text_index]
        view.update({k: torch.tensor(v, dtype=torch.float32) for k, v in labels.items()})
        return view

    def _start(self, i: int, rng: np.random.Generator) -> int:
        return random_offset(rng, self.features.frames(i), self.crop_frames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"index must be a non-negative int, got {index!r}")
        i = int(index) % len(self.features)
        rng = np.random.default_rng((self.seed, int(index)))
        turns = rng.permutation(4) if self.data.yaw_rotations else np.zeros(4, dtype=int)
        start = self._start(i, rng)
        views = [self._view(i, start, int(turns[0]), bool(rng.random() >= self.data.nonspatial_share), rng)]
        if self.data.views >= 2:
            views.append(self._view(i, start, int(turns[1]), True, rng))
        if self.data.views >= 3:
            sibling = self.siblings[i][int(rng.integers(len(self.siblings[i])))] if self.siblings[i] else None
            if sibling is None:
                views.append(self._view(i, start, int(turns[2]), True, rng))
            else:
                views.append(self._view(sibling, self._start(sibling, rng), int(turns[2]), True, rng))
        return {k: torch.stack([v[k] for v in views]) if isinstance(views[0][k], torch.Tensor)
                else [v[k] for v in views] for k in views[0]}


def collate_views(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch of multi-view items -> one flat batch of ``sum(V)`` views (tensors concatenated, strings listed)."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.cat(values) if isinstance(values[0], torch.Tensor) else [x for v in values for x in v]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Task
# ----------------------------------------------------------------------------------------------------------------


class ELSATask:
    """What :func:`run_training` needs: model, dataset, collate, loss and a cheap validation."""

    name = "elsa"

    def __init__(
        self, model: ELSA, train_dataset: ELSAFeatureDataset, valid: dict[str, Any] | None, cache_dir: Path,
        probes: dict[str, list[torch.Tensor | list[str]]] | None = None,
    ) -> None:
        self.model = model
        self.train_dataset = train_dataset
        self.valid = valid
        self.cache_dir = cache_dir
        # Zero-shot probe term: per attribute, per class, the cached text-model features of its prompts (or the
        # prompts themselves when the text model trains); None when the config's zero_shot_loss_weight is 0.
        self.probes = probes

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_views(items)

    def zero_shot_prototypes(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """Unit class prototypes ``(C, D)`` per attribute from the current text branch, as
        :func:`~soundstage.elsa_encoder.probes.class_prototypes` makes them (eval mode, no gradient: the term moves
        the audio branch towards the prototypes, never the prototypes)."""
        if not self.probes:
            return None
        model = getattr(model, "module", model)  # unwrap a DistributedDataParallel
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                device = model.logit_scale.device
                out = {}
                for attribute, classes in self.probes.items():
                    rows = []
                    for prompts in classes:
                        features = prompts.to(device) if isinstance(prompts, torch.Tensor) else \
                            model.text_features(prompts)
                        rows.append(F.normalize(model.embed_text_features(features).mean(0), dim=-1))
                    out[attribute] = torch.stack(rows)
        finally:
            model.train(was_training)
        return out

    def training_step(
        self, model: torch.nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        text = batch["text_features"] if "text_features" in batch else batch["caption"]
        output = model(batch["logmel"], batch["intensity"], text)
        loss, logs = elsa_loss(output, batch, self.model.config, self.zero_shot_prototypes(model))
        logs["spatial_share"] = float(batch["is_spatial"].float().mean())
        return loss, logs

    def validate(self, model: torch.nn.Module, step: int, writer: Any | None) -> dict[str, float]:
        """Retrieval, zero-shot direction and head errors on a fixed subset of the valid split."""
        if self.valid is None:
            return {}
        v = self.valid
        device = next(model.parameters()).device
        audio = torch.cat([
            model.embed_audio_features(lm.to(device), it.to(device))
            for lm, it in zip(v["logmel"].split(64), v["intensity"].split(64))
        ])
        if v["text_features"] is not None:
            text = model.embed_text_features(v["text_features"].to(device))
        else:
            text = model.embed_text(v["captions"])
        scale = model.logit_scale.clamp(max=math.log(model.config.max_logit_scale)).exp()
        relevant = relevance_from_labels(v["captions"], v["captions"])
        similarity = (text @ audio.T).cpu()
        preds = model.head_outputs(audio)
        target = direction_vector(v["azimuth_deg"], v["elevation_deg"])
        errors = angle_between_deg(preds["direction"].cpu(), target)
        spatial = model.spatial_from_embedding(audio)
        direction_sim = (audio @ class_prototypes(model, "direction").T).cpu()
        distance_sim = (audio @ class_prototypes(model, "distance").T).cpu()
        size_sim = (audio @ class_prototypes(model, "room_size").T).cpu()
        return {
            "contrastive": float(contrastive_loss(audio, text, scale, torch.as_tensor(v["groups"], device=device))),
            "t2a_R@1": recall_at_k(similarity, relevant, 1),
            "t2a_R@10": recall_at_k(similarity, relevant, 10),
            "zero_shot_direction": zero_shot_accuracy(direction_sim, v["direction_labels"]),
            "zero_shot_distance": zero_shot_accuracy(distance_sim, v["distance_labels"]),
            "zero_shot_room_size": zero_shot_accuracy(size_sim, v["room_size_labels"]),
            "median_direction_error_deg": float(errors.median()),
            "distance_mae_m": float((spatial["distance_m"].cpu() - v["distance_m"]).abs().mean()),
        }


def _caption_tables(
    records: list[dict[str, Any]], data: ELSADataConfig, seed: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unique caption texts and, per clip, the text index of each (turn, variant) spatial caption and of its
    semantic caption."""
    texts: dict[str, int] = {}
    turns = 4 if data.yaw_rotations else 1
    spatial = np.zeros((len(records), turns, data.caption_variants), dtype=np.int64)
    semantic = np.zeros(len(records), dtype=np.int64)
    for i, record in enumerate(records):
        for t in range(turns):
            for variant in range(data.caption_variants):
                spatial[i, t, variant] = texts.setdefault(rotated_caption(record, t, variant, seed, i), len(texts))
        semantic[i] = texts.setdefault(record["caption"], len(texts))
    return list(texts), spatial, semantic


def _validation_set(
    model: ELSA, data_dir: Path, data: ELSADataConfig, cache_dir: Path, crop_frames: int
) -> dict[str, Any] | None:
    try:
        features = cached_split_features(model.config, data_dir, "valid", cache_dir, data.max_seconds)
    except ValueError:
        logger.warning("%s has no valid split; training runs without validation metrics", data_dir)
        return None
    count = min(len(features), data.valid_clips)
    picks = np.linspace(0, len(features) - 1, count).round().astype(int)
    crops = []
    for i in picks:
        crops.append(features.clip(int(i), centre_offset(features.frames(int(i)), crop_frames), crop_frames))
    records = [features.records[int(i)] for i in picks]
    captions = [r["spatial_caption"] for r in records]
    frozen = model.text_top_layers is None
    text_features = torch.from_numpy(cached_text_features(model, captions, cache_dir)) if frozen else None
    return {
        "logmel": torch.stack([c[0] for c in crops]),
        "intensity": torch.stack([c[1] for c in crops]),
        "captions": captions,
        "groups": [captions.index(c) for c in captions],
        "text_features": text_features,
        "azimuth_deg": torch.tensor([float(r["azimuth_deg"]) for r in records]),
        "elevation_deg": torch.tensor([float(r["elevation_deg"]) for r in records]),
        "distance_m": torch.tensor([float(r["distance_m"]) for r in records]),
        "direction_labels": np.array([attribute_label("direction", r) for r in records]),
        "distance_labels": np.array([attribute_label("distance", r) for r in records]),
        "room_size_labels": np.array([attribute_label("room_size", r) for r in records]),
    }


def make_elsa_task(
    preset: str,
    data_dir: Path,
    config: TrainConfig,
    model_config: ELSAConfig | None = None,
    data_config: ELSADataConfig | None = None,
    cache_dir: Path | None = None,
) -> ELSATask:
    """Build the ELSA task: the preset's model (seeded by ``config.seed``), cached features of the train and valid
    splits of ``data_dir`` and cached text features (under ``cache_dir``, default ``config.out_dir/cache``).

    Args:
        preset: ``tiny``, ``small`` or ``paper`` (:data:`soundstage.elsa_encoder.ELSA_PRESETS`).
        model_config: replaces the preset's model config (e.g. a tiny text model for tests).
        data_config: replaces the preset's :class:`ELSADataConfig`.
    """
    model_config = model_config or elsa_preset(preset)
    data = data_config or ELSA_DATA_DEFAULTS[preset]
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(config.out_dir) / "cache"
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = ELSA(model_config)
    train = cached_split_features(model_config, Path(data_dir), "train", cache_dir, data.max_seconds)
    texts, spatial_index, semantic_index = _caption_tables(train.records, data, config.seed)
    frozen = model.text_top_layers is None
    text_features = cached_text_features(model, texts, cache_dir) if frozen else None
    dataset = ELSAFeatureDataset(
        train, data, model_config, config.seed, text_features, texts, spatial_index, semantic_index
    )
    valid = _validation_set(model, Path(data_dir), data, cache_dir, dataset.crop_frames)
    probes = _probe_features(model, cache_dir) if model_config.zero_shot_loss_weight > 0 else None
    (Path(config.out_dir)).mkdir(parents=True, exist_ok=True)
    (Path(config.out_dir) / "elsa_data_config.json").write_text(json.dumps(asdict(data), indent=2) + "\n")
    logger.info("ELSA task: %d train clips, %d caption texts, crop %d frames", len(train), len(texts),
                dataset.crop_frames)
    return ELSATask(model, dataset, valid, cache_dir, probes)


def _probe_features(model: ELSA, cache_dir: Path) -> dict[str, list[torch.Tensor | list[str]]]:
    """Per attribute of ``config.zero_shot_attributes``, per class, the prompts' cached text-model features (the
    prompts themselves when the text model trains)."""
    prompts = {a: list(probe_texts(a).values()) for a in model.config.zero_shot_attributes}
    if model.text_top_layers is not None:
        return dict(prompts)
    flat = [t for classes in prompts.values() for texts in classes for t in texts]
    features = torch.from_numpy(cached_text_features(model, flat, cache_dir))
    out: dict[str, list[torch.Tensor | list[str]]] = {}
    start = 0
    for attribute, classes in prompts.items():
        out[attribute] = []
        for texts in classes:
            out[attribute].append(features[start : start + len(texts)])
            start += len(texts)
    return out
