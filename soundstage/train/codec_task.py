"""Codec training task for the shared loop: ``soundstage train codec --preset small --data DIR --out DIR``.

Data: random crops of the FOA clips of a dataset folder's ``train`` split, each turned by a random yaw
(:class:`soundstage.data.dataset.FOADataset`, a pure function of ``(seed, stream index)`` as exact resume requires).

Validation (EMA weights): centre crops of the first clips of the ``valid`` split, decoded once. It logs
reconstruction and spatial metrics and two audio examples, and measures the latent scale
(:func:`soundstage.codec.model.latent_scale_of`, as :func:`soundstage.codec.measure_latent_scale`) and sets it on the model, so every export carries a current one.

Optional adversary: a discriminator trained inside each step with its own optimiser; :meth:`CodecTask.setup` puts
it on the loop's device and both are in every checkpoint.
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
from soundstage.codec.model import CODEC_PRESETS, FOACodec, FOACodecConfig, latent_scale_of
from soundstage.common.errors import SoundstageError
from soundstage.data.dataset import FOAClips, FOADataset, centre_crops
from soundstage.data.pitched import PitchedMixDataset
from soundstage.train.trainer import TrainConfig

# Per-preset TrainConfig values (what a step costs: docs/training.md).
CODEC_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"max_steps": 20, "batch_size": 2, "learning_rate": 1e-3, "warmup_steps": 2, "log_every": 1,
             "validate_every": 10, "checkpoint_every": 10},
    "small": {"max_steps": 6000, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 200, "ema_decay": 0.999,
              "log_every": 25, "validate_every": 500, "checkpoint_every": 250},
    "paper": {"max_steps": 500_000, "batch_size": 16, "learning_rate": 1e-4, "warmup_steps": 1000,
              "ema_decay": 0.9999, "log_every": 100, "validate_every": 5000, "checkpoint_every": 5000},
}


@dataclass(frozen=True)
class CodecDataConfig:
    """What the codec trains and validates on."""

    crop_seconds: float  # training crop; the network's receptive field is ~0.5 s, so 1 s is plenty on a CPU
    valid_clips: int  # fixed validation subset: the first clips of the valid split, centre crops
    valid_seconds: float
    cache_mb: float  # decoded training clips kept in memory (int16)
    # stop a run whose steady tones and harmonic note (mean W level error) are still below tone_gate_db at a
    # validation at or after tone_gate_step (0: never); tones are what a frame-rate decoder loses (docs/codec.md)
    tone_gate_step: int = 0
    tone_gate_db: float = -10.0
    # share of training crops replaced by synthetic pitched FOA (soundstage.data.pitched), half of them over the crop
    pitched_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_seconds <= 0 or self.valid_seconds <= 0:
            raise ValueError("crop_seconds and valid_seconds must be positive")
        if self.valid_clips < 1 or self.cache_mb < 0:
            raise ValueError("valid_clips must be >= 1 and cache_mb >= 0")
        if not 0.0 <= self.pitched_fraction <= 1.0 or self.tone_gate_step < 0:
            raise ValueError("pitched_fraction must lie in [0, 1] and tone_gate_step be >= 0")


CODEC_DATA_DEFAULTS: dict[str, CodecDataConfig] = {
    "tiny": CodecDataConfig(crop_seconds=0.5, valid_clips=2, valid_seconds=0.5, cache_mb=64),
    # 48 clips of 4 s: 16 crops of 2 s ranked runs differently from the full valid split
    "small": CodecDataConfig(crop_seconds=1.0, valid_clips=48, valid_seconds=4.0, cache_mb=3000),
    "paper": CodecDataConfig(crop_seconds=2.0, valid_clips=32, valid_seconds=4.0, cache_mb=16000),
}


@dataclass
class CodecTask:
    """The codec's :class:`~soundstage.train.trainer.TrainTask`."""

    model: FOACodec
    train_dataset: FOADataset | PitchedMixDataset
    valid_audio: torch.Tensor  # (N, 4, T) fixed validation crops
    loss: CodecLoss
    out_dir: Path
    name: str = "codec"
    discriminator: MultiScaleSTFTDiscriminator | None = None
    disc_optimizer: torch.optim.Optimizer | None = None
    data: CodecDataConfig | None = None  # for the validation tone gate

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

    def setup(self, accelerator: Any) -> None:
        """Put the adversary on the loop's device, with its optimiser rebuilt over the moved weights (a move to some
        devices makes new parameters; setup comes before any step and before a checkpoint is restored)."""
        if self.discriminator is not None and self.disc_optimizer is not None:
            self.discriminator.to(accelerator.device)
            settings = self.disc_optimizer.state_dict()  # hyperparameters of each group (no state yet)
            self.disc_optimizer = type(self.disc_optimizer)(self.discriminator.parameters())
            self.disc_optimizer.load_state_dict(settings)

    def extra_state(self) -> list[Any]:
        """The adversary and its optimiser, checkpointed with the model so an adversarial run resumes exactly."""
        return [] if self.discriminator is None else [self.discriminator, self.disc_optimizer]

    def validate(self, model: nn.Module, step: int, writer: Any | None) -> dict[str, float]:
        from soundstage.codec.evaluate import harmonic_note_check, steady_tone_check
        from soundstage.codec.losses import spatial_terms
        from soundstage.metrics.audio_metrics import mel_distance, si_sdr, third_octave_band_energy_error_db
        from soundstage.metrics.spatial_metrics import broadband_direction_error_deg, diffuseness_error

        codec: FOACodec = getattr(model, "module", model)
        device = codec.latent_scale.device
        target = self.valid_audio.to(device)
        chunks = target.split(8)
        means = [codec.posterior(chunk)[0] for chunk in chunks]
        recon = torch.cat([codec.decode_unscaled(mean, chunk.shape[-1]) for mean, chunk in zip(means, chunks)])
        scale = latent_scale_of(means)  # the one measurement measure_latent_scale makes, on this pass's means
        codec.set_latent_scale(scale)
        self.model.set_latent_scale(scale)  # the live model too, so the EMA of the buffer stays put
        sr = codec.sample_rate
        band = third_octave_band_energy_error_db(recon[:, 0], target[:, 0], sr)
        spatial = spatial_terms(recon, target)
        tones = {**steady_tone_check(codec), "harmonic_note": harmonic_note_check(codec)}
        tone_level = float(np.mean([t["level_error_db"] for t in tones.values()]))
        metrics = {
            "stft_loss": float(self.loss.stft(recon, target)),
            **{f"spatial_loss_{name}": float(value) for name, value in spatial.items()},
            "angle_error_median_deg": float(broadband_direction_error_deg(recon, target).median()),
            "diffuseness_error": float(diffuseness_error(recon, target).mean()),
            "w_band_error_median_db": float(torch.nanmedian(band)),
            "mel_distance": float(mel_distance(recon, target, sr).mean()),
            "si_sdr_w_db": float(si_sdr(recon[:, 0], target[:, 0]).mean()),
            # steady tones are what a frame-rate decoder loses first (docs/codec.md)
            "steady_tone_level_error_db": tone_level,
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
        gate = self.data
        if gate is not None and gate.tone_gate_step and step >= gate.tone_gate_step and tone_level < gate.tone_gate_db:
            raise ToneGateError(
                f"codec run stopped at step {step}: steady tones and the harmonic note come back "
                f"{tone_level:+.1f} dB on average (gate: {gate.tone_gate_db:+.1f} dB by step {gate.tone_gate_step}); "
                "this recipe is not keeping pitched sound. Checkpoints are kept; change the recipe rather than "
                "resume it")
        return metrics


class ToneGateError(SoundstageError, RuntimeError):
    """A codec run stopped by its validation tone gate (``CodecDataConfig.tone_gate_step``)."""


def load_valid_audio(data_dir: Path, sample_rate: int, data: CodecDataConfig) -> torch.Tensor:
    """Centre crops ``(N, 4, T)`` of the first ``data.valid_clips`` clips of the valid split (else of train)."""
    try:
        clips = FOAClips(data_dir, "valid", sample_rate)
    except ValueError:
        clips = FOAClips(data_dir, "train", sample_rate)
    return centre_crops(clips, data.valid_seconds, data.valid_clips)


def make_codec_task(
    preset: str, data_dir: Path, config: TrainConfig, loss_config: CodecLossConfig | None = None,
    model_config: FOACodecConfig | None = None, data_config: CodecDataConfig | None = None,
) -> CodecTask:
    """Build the codec, its data and loss for ``run_training``; ``preset`` names a ``CODEC_PRESETS`` entry (its
    model config and :data:`CODEC_DATA_DEFAULTS` entry, unless ``model_config`` or ``data_config`` replace them)."""
    if preset not in CODEC_PRESETS:
        raise ValueError(f"unknown codec preset {preset!r}; choose one of {sorted(CODEC_PRESETS)}")
    data = data_config or CODEC_DATA_DEFAULTS[preset]
    data_dir = Path(data_dir)
    torch.manual_seed(config.seed)  # model init is part of the run's identity
    model = FOACodec(model_config or CODEC_PRESETS[preset])
    sr = model.sample_rate
    dataset: Any = FOADataset(FOAClips(data_dir, "train", sr, data.cache_mb), data.crop_seconds, seed=config.seed)
    if data.pitched_fraction > 0:
        dataset = PitchedMixDataset(dataset, data.pitched_fraction, dataset.crop_samples, sr, seed=config.seed)
    valid = load_valid_audio(data_dir, sr, data)
    loss = CodecLoss(loss_config, sample_rate=sr)
    task = CodecTask(model=model, train_dataset=dataset, valid_audio=valid, loss=loss, out_dir=config.out_dir,
                     data=data)
    if loss.config.adversarial:
        task.discriminator = MultiScaleSTFTDiscriminator()
        task.disc_optimizer = torch.optim.AdamW(task.discriminator.parameters(), lr=config.learning_rate,
                                                betas=config.betas)
    return task


__all__ = ["CODEC_DATA_DEFAULTS", "CODEC_TRAIN_DEFAULTS", "CodecDataConfig", "CodecTask", "ToneGateError",
           "make_codec_task"]
