"""Codec training task for the shared loop: ``soundstage train codec --preset small --data DIR --out DIR``.

Data: random crops of the FOA clips of a dataset folder's ``train`` split (manifest + FLAC), each rotated by a random
yaw (an exact FOA rotation, so every direction is seen equally often). All randomness of an item comes from
``numpy.random.default_rng((seed, stream_index))`` as the loop's exact resume requires. Decoded clips are cached in
memory (int16, up to a byte budget), so each FLAC is decoded once per run.

Validation (EMA weights): a fixed subset of the ``valid`` split (the first clips of the manifest, centre crops),
decoded once. It logs reconstruction and spatial metrics, two audio examples to TensorBoard, and measures the
latent scale (1 / std of the posterior means) and sets it on the model, so every export carries a current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from soundstage.codec.losses import (
    CodecLoss,
    CodecLossConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    generator_adversarial_loss,
)
from soundstage.codec.model import CODEC_PRESETS, FOACodec, FOACodecConfig
from soundstage.common.audio import load_audio
from soundstage.data.manifest import split_records
from soundstage.foa import rotate_foa
from soundstage.train.trainer import TrainConfig

# Per-preset overrides of TrainConfig (plus codec-only keys: crop_seconds, valid_clips, valid_seconds, cache_mb).
# small: 0.9-1.5 s per step on one (shared) CPU core with 8 x 1 s crops, so 6,000 steps is 90-150 min. 1 s crops are
# plenty for a network whose receptive field is ~0.5 s, and half the cost of 2 s ones. Validation takes 48 clips of
# 4 s (~20 s of CPU): 16 crops of 2 s ranked runs differently from the full valid split.
CODEC_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "max_steps": 20, "batch_size": 2, "crop_seconds": 0.5, "learning_rate": 1e-3, "warmup_steps": 2,
        "log_every": 1, "validate_every": 10, "checkpoint_every": 10, "valid_clips": 2, "valid_seconds": 0.5,
        "cache_mb": 64,
    },
    "small": {
        "max_steps": 6000, "batch_size": 8, "crop_seconds": 1.0, "learning_rate": 1e-3, "warmup_steps": 200,
        "ema_decay": 0.999, "log_every": 25, "validate_every": 500, "checkpoint_every": 250, "valid_clips": 48,
        "valid_seconds": 4.0, "cache_mb": 3000,
    },
    "paper": {
        "max_steps": 500_000, "batch_size": 16, "crop_seconds": 2.0, "learning_rate": 1e-4, "warmup_steps": 1000,
        "ema_decay": 0.9999, "log_every": 100, "validate_every": 5000, "checkpoint_every": 5000, "valid_clips": 32,
        "valid_seconds": 4.0, "cache_mb": 16000,
    },
}


class FOAClipCache:
    """Decoded ``(4, T)`` clips of a dataset split at one sample rate, kept in memory as int16 up to a budget."""

    def __init__(self, data_dir: Path, records: list[dict[str, Any]], sample_rate: int, budget_mb: float):
        self.data_dir, self.records, self.sample_rate = Path(data_dir), records, sample_rate
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.clips: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def get(self, i: int) -> np.ndarray:
        """float32 ``(4, T)`` clip ``i``."""
        if i not in self.clips:
            audio, _ = load_audio(self.data_dir / self.records[i]["path"], sample_rate=self.sample_rate, channels=4)
            if self.used + audio.nbytes // 2 > self.budget:
                return audio
            # 16-bit FLAC decodes to int / 32768 exactly, so this is lossless for our datasets; the first use
            # returns the cached copy too, so a resumed run (cold cache) sees the very same samples
            self.clips[i] = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
            self.used += audio.nbytes // 2
        return self.clips[i].astype(np.float32) / 32768.0


def crop_or_pad(audio: np.ndarray, length: int, offset: int) -> np.ndarray:
    """``audio[:, offset:offset + length]``, zero-padded at the end when the clip is shorter."""
    out = audio[:, offset : offset + length]
    if out.shape[1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    return out


class FOACropDataset(torch.utils.data.Dataset):
    """Random crops with random yaw; item ``i`` (any non-negative stream index) uses clip ``i % N``."""

    def __init__(self, cache: FOAClipCache, crop_samples: int, seed: int = 0, rotate: bool = True):
        self.cache, self.crop_samples, self.seed, self.rotate = cache, crop_samples, seed, rotate

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, int(index)))
        audio = self.cache.get(int(index) % len(self.cache))
        offset = int(rng.integers(0, max(1, audio.shape[1] - self.crop_samples + 1)))
        crop = torch.from_numpy(np.ascontiguousarray(crop_or_pad(audio, self.crop_samples, offset)))
        if self.rotate:
            crop = rotate_foa(crop, yaw_deg=float(rng.uniform(-180.0, 180.0)))
        return crop


@dataclass
class CodecTask:
    """The codec's :class:`~soundstage.train.trainer.TrainTask`."""

    model: FOACodec
    train_dataset: FOACropDataset
    valid_audio: torch.Tensor  # (N, 4, T) fixed validation crops
    loss: CodecLoss
    out_dir: Path
    name: str = "codec"
    discriminator: MultiScaleSTFTDiscriminator | None = None
    disc_optimizer: torch.optim.Optimizer | None = None

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(items)

    def training_step(self, model: nn.Module, batch: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        recon, mean, std = model(batch)
        loss, logs = self.loss(recon, batch, mean, std)
        if self.discriminator is not None and self.disc_optimizer is not None:
            # the adversary trains inside the step with its own optimiser; both are in every checkpoint (extra_state)
            d_loss = discriminator_loss(self.discriminator, recon, batch)
            self.disc_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_optimizer.step()
            adv, fm = generator_adversarial_loss(self.discriminator, recon, batch)
            c = self.loss.config
            loss = loss + c.adversarial_weight * adv + c.feature_matching_weight * fm
            logs.update(loss_disc=d_loss.item(), loss_adv=adv.item(), loss_feature_matching=fm.item())
        return loss, logs

    def extra_state(self) -> list[Any]:
        """The adversary and its optimiser, checkpointed with the model so an adversarial run resumes exactly."""
        return [] if self.discriminator is None else [self.discriminator, self.disc_optimizer]

    def validate(self, model: nn.Module, step: int, writer: Any | None) -> dict[str, float]:
        from soundstage.codec.evaluate import steady_tone_check
        from soundstage.codec.losses import spatial_terms
        from soundstage.metrics.audio_metrics import mel_distance, si_sdr, third_octave_band_energy_error_db
        from soundstage.metrics.spatial_metrics import broadband_direction_error_deg, diffuseness_error

        codec: FOACodec = getattr(model, "module", model)
        device = codec.latent_scale.device
        target = self.valid_audio.to(device)
        recons, means = [], []
        for chunk in target.split(8):
            mean, _ = codec.posterior(chunk)
            means.append(mean)
            recons.append(codec.decode_unscaled(mean, chunk.shape[-1]))
        recon, mean = torch.cat(recons), torch.cat(means)
        scale = 1.0 / float(mean.double().std().clamp_min(1e-6))
        codec.set_latent_scale(scale)
        self.model.set_latent_scale(scale)  # the live model too, so the EMA of the buffer stays put
        sr = codec.sample_rate
        band = third_octave_band_energy_error_db(recon[:, 0], target[:, 0], sr)
        spatial = spatial_terms(recon, target)
        tones = steady_tone_check(codec)
        metrics = {
            "stft_loss": float(self.loss.stft(recon, target)),
            **{f"spatial_loss_{name}": float(value) for name, value in spatial.items()},
            "angle_error_median_deg": float(broadband_direction_error_deg(recon, target).median()),
            "diffuseness_error": float(diffuseness_error(recon, target).mean()),
            "w_band_error_median_db": float(torch.nanmedian(band)),
            "mel_distance": float(mel_distance(recon, target, sr).mean()),
            "si_sdr_w_db": float(si_sdr(recon[:, 0], target[:, 0]).mean()),
            # steady tones are what a frame-rate decoder loses first (stft_autoencoder module doc)
            "steady_tone_level_error_db": float(np.mean([t["level_error_db"] for t in tones.values()])),
            "latent_scale": scale,
        }
        if writer is not None:
            for i in range(min(2, target.shape[0])):
                for c, label in ((0, "W"), (1, "Y")):
                    peak = max(float(target[i, c].abs().max()), 1e-6)
                    writer.add_audio(f"valid_{i}/{label}_input", (target[i, c] / peak).clamp(-1, 1)[None].cpu(),
                                     step, sample_rate=sr)
                    writer.add_audio(f"valid_{i}/{label}_reconstruction",
                                     (recon[i, c] / peak).clamp(-1, 1)[None].cpu(), step, sample_rate=sr)
        return metrics


def load_valid_audio(data_dir: Path, sample_rate: int, clips: int, seconds: float, split: str = "valid") -> torch.Tensor:
    """Centre crops ``(N, 4, seconds * sample_rate)`` of the first ``clips`` clips of a split (falls back to train)."""
    try:
        records = split_records(data_dir, split)
    except ValueError:
        records = split_records(data_dir, "train")
    cache = FOAClipCache(data_dir, records[:clips], sample_rate, budget_mb=0)
    length = round(seconds * sample_rate)
    crops = []
    for i in range(len(cache)):
        audio = cache.get(i)
        crops.append(crop_or_pad(audio, length, max(0, (audio.shape[1] - length) // 2)))
    return torch.from_numpy(np.stack(crops))


def make_codec_task(
    preset: str, data_dir: Path, config: TrainConfig, loss_config: CodecLossConfig | None = None,
    model_config: FOACodecConfig | None = None,
) -> CodecTask:
    """Build the codec, its data and loss for ``run_training``; ``preset`` names a ``CODEC_PRESETS`` entry (its
    training defaults, and its model config unless ``model_config`` replaces it)."""
    if preset not in CODEC_PRESETS:
        raise ValueError(f"unknown codec preset {preset!r}; choose one of {sorted(CODEC_PRESETS)}")
    defaults = CODEC_TRAIN_DEFAULTS[preset]
    data_dir = Path(data_dir)
    torch.manual_seed(config.seed)  # model init is part of the run's identity
    model = FOACodec(model_config or CODEC_PRESETS[preset])
    sr = model.sample_rate
    cache = FOAClipCache(data_dir, split_records(data_dir, "train"), sr, defaults["cache_mb"])
    dataset = FOACropDataset(cache, round(defaults["crop_seconds"] * sr), seed=config.seed)
    valid = load_valid_audio(data_dir, sr, defaults["valid_clips"], defaults["valid_seconds"])
    loss = CodecLoss(loss_config, sample_rate=sr)
    task = CodecTask(model=model, train_dataset=dataset, valid_audio=valid, loss=loss, out_dir=config.out_dir)
    if loss.config.adversarial:
        task.discriminator = MultiScaleSTFTDiscriminator()
        task.disc_optimizer = torch.optim.AdamW(task.discriminator.parameters(), lr=config.learning_rate,
                                                betas=config.betas)
    return task


__all__ = ["CODEC_TRAIN_DEFAULTS", "CodecTask", "FOAClipCache", "FOACropDataset", "make_codec_task"]
