"""DiT training task for the shared loop: ``soundstage train dit --preset small --data LATENTS --out DIR``.

Data: random crops of a latent folder's ``train`` items (:class:`soundstage.data.latents.LatentDataset`); each step
draws x0 = mean + std * eps normalised as the codec's ``encode`` does (``LatentsInfo.normalizer``), the conditioning
dropout (:meth:`Conditioners.training_drop`: the mode of each example, parametric / descriptive / both / none, then
each conditioner's own dropout) and the flow loss's t and noise from a generator seeded by the batch's item seeds, so
a step is a pure function of its stream indices and a resumed run trains exactly as a straight one. The frozen text
model's and ELSA's caches are filled in a fixed order at setup, so cold caches after a restart give the same
features.

Validation (EMA model): the flow loss of fixed valid items at fixed (t, noise) draws in each request mode (a number
to compare runs), and a few generated clips from parametric valid requests WITHOUT the direction lock, decoded by
the frozen codec: the median great-circle error between the requested direction and their broadband DOA, plus W
audio for TensorBoard. The DiT config records the latent folder's codec fingerprint; another codec is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from soundstage.codec import FOACodec, codec_fingerprint
from soundstage.conditioners import ConditionBatch
from soundstage.data.latents import LatentDataset, LatentFolderError, LatentsInfo, collate_latents, read_latents_info
from soundstage.dit import SpatialDiT, dit_preset, flow_matching_loss
from soundstage.dit.model import DiTConfig
from soundstage.dit.sampling import flow_timesteps, guided_velocity, sample_euler
from soundstage.foa import broadband_doa, great_circle_deg
from soundstage.train.trainer import TrainConfig

# Per-preset TrainConfig values; small: 3600 steps of ~0.9 s (batch 16, 6 s crops, measured on 2 CPU cores) is ~1 h.
# small's EMA decay 0.995 (half-life ~140 steps): 0.999 still weighted the early weights after 2,500 steps.
DIT_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"max_steps": 20, "batch_size": 2, "learning_rate": 1e-3, "warmup_steps": 2, "log_every": 1,
             "validate_every": 10, "checkpoint_every": 10},
    "small": {"max_steps": 3600, "batch_size": 16, "learning_rate": 5e-4, "weight_decay": 0.01, "warmup_steps": 200,
              "ema_decay": 0.995, "log_every": 25, "validate_every": 250, "checkpoint_every": 250},
    "paper": {"max_steps": 400_000, "batch_size": 32, "learning_rate": 1e-4, "weight_decay": 0.01,
              "warmup_steps": 2000, "ema_decay": 0.9999, "log_every": 100, "validate_every": 5000,
              "checkpoint_every": 5000},
}


@dataclass(frozen=True)
class DiTDataConfig:
    """What the DiT trains and validates on (seconds of audio; latent frames follow from the latent folder)."""

    crop_seconds: float  # training crop (at most the DiT's max_seconds); shorter items come whole
    valid_items: int  # valid items (evenly spread over the split) for the fixed flow loss
    valid_draws: int  # fixed (t, noise) draws per valid item and mode
    valid_clips: int  # clips generated at each validation
    valid_seconds: float  # their length
    valid_steps: int  # Euler steps
    valid_cfg_scale: float

    def __post_init__(self) -> None:
        if self.crop_seconds <= 0 or self.valid_seconds <= 0:
            raise ValueError("crop_seconds and valid_seconds must be positive")
        if min(self.valid_items, self.valid_draws, self.valid_clips, self.valid_steps) < 1:
            raise ValueError("valid_items, valid_draws, valid_clips and valid_steps must be >= 1")
        if self.valid_cfg_scale < 0:
            raise ValueError(f"valid_cfg_scale must be >= 0, got {self.valid_cfg_scale}")


DIT_DATA_DEFAULTS: dict[str, DiTDataConfig] = {
    "tiny": DiTDataConfig(crop_seconds=1.0, valid_items=2, valid_draws=2, valid_clips=2, valid_seconds=0.5,
                          valid_steps=4, valid_cfg_scale=3.0),
    "small": DiTDataConfig(crop_seconds=6.0, valid_items=16, valid_draws=4, valid_clips=4, valid_seconds=2.0,
                           valid_steps=16, valid_cfg_scale=3.0),
    "paper": DiTDataConfig(crop_seconds=10.0, valid_items=64, valid_draws=4, valid_clips=8, valid_seconds=5.0,
                           valid_steps=50, valid_cfg_scale=5.0),
}
REQUEST_KEYS = {  # what a request of each mode gives (the rest is "not given"), as the pipeline asks
    "parametric": ("caption", "azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s", "seconds"),
    "descriptive": ("spatial_caption", "seconds"),
}


def requests(records: list[dict[str, Any]], mode: str, seconds: list[float]) -> ConditionBatch:
    """The conditions of ``mode`` (a key of :data:`REQUEST_KEYS`) of manifest records, for clips of ``seconds``."""
    return ConditionBatch.from_records(
        [{k: v for k, v in {**r, "seconds": s}.items() if k in REQUEST_KEYS[mode]} for r, s in zip(records, seconds)])


def batch_generators(seeds: list[int], device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """A CPU and a ``device`` generator seeded by the batch's item seeds (dropout masks are drawn on the CPU)."""
    seed = int(np.random.default_rng(seeds).integers(2**63 - 1))
    return torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed)


@dataclass
class DITTask:
    """The DiT's :class:`~soundstage.train.trainer.TrainTask`."""

    model: SpatialDiT
    train_dataset: LatentDataset
    valid_items: list[dict[str, Any]]  # fixed items of the valid split (LatentDataset items)
    info: LatentsInfo
    codec: FOACodec  # frozen, for decoding generated clips at validation
    elsa: nn.Module  # frozen, attached to the descriptive conditioner
    data: DiTDataConfig
    weight_decay: float
    name: str = "dit"

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_latents(items)

    def setup(self, accelerator: Any) -> None:
        """Place the frozen codec and ELSA on the loop's device and fill the text caches in a fixed order."""
        for frozen in (self.codec, self.elsa):
            frozen.to(accelerator.device).eval().requires_grad_(False)
        conditioners = self.model.conditioners
        records = self.train_dataset.records
        with torch.no_grad():
            for texts, encode in ((sorted({r["caption"] for r in records}), conditioners.text.encoder.encode_tokens),
                                  (sorted({r["spatial_caption"] for r in records}), conditioners.descriptive.embed)):
                for start in range(0, len(texts), 64):
                    encode(texts[start:start + 64])

    def param_groups(self) -> list[dict[str, Any]]:
        return self.model.param_groups(self.weight_decay)

    def _seconds(self, frames: torch.Tensor) -> list[float]:
        return (frames.float() / self.info.frame_rate).tolist()

    def training_step(self, model: nn.Module, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        dit: SpatialDiT = getattr(model, "module", model)
        mean, std, mask = batch["mean"], batch["std"], batch["frame_mask"]
        cpu, device = batch_generators(batch["seeds"], mean.device)
        eps = torch.randn(mean.shape, generator=device, device=mean.device)
        x0 = self.info.normalizer.normalize(mean + std * eps) * mask.unsqueeze(1)
        drop = dit.conditioners.training_drop(len(mean), generator=cpu)
        seconds = self._seconds(batch["frames"])
        conditions = ConditionBatch.from_records([{**r, "seconds": s} for r, s in zip(batch["records"], seconds)])
        cond = dit.conditioners(conditions, drop)
        return flow_matching_loss(model, x0, cond, mask, generator=device)

    def validate(self, model: nn.Module, step: int, writer: Any | None) -> dict[str, float]:
        dit: SpatialDiT = getattr(model, "module", model)
        device = next(dit.parameters()).device
        metrics = self._valid_flow_loss(dit, device)
        metrics.update(self._valid_generation(dit, device, step, writer))
        return metrics

    def _valid_flow_loss(self, dit: SpatialDiT, device: torch.device) -> dict[str, float]:
        """Flow loss of the posterior means of the valid items at ``valid_draws`` fixed (t, noise) draws per mode."""
        batch = collate_latents(self.valid_items)
        x0 = self.info.normalizer.normalize(batch["mean"].to(device))
        mask = batch["frame_mask"].to(device)
        seconds = self._seconds(batch["frames"])
        losses = {}
        for mode in REQUEST_KEYS:
            cond = dit.conditioners(requests(batch["records"], mode, seconds))
            draws = [flow_matching_loss(dit, x0, cond, mask, generator=torch.Generator(device=device).manual_seed(k))[0]
                     for k in range(self.data.valid_draws)]
            losses[f"flow_loss_{mode}"] = float(torch.stack(draws).mean())
        return {"flow_loss": sum(losses.values()) / len(losses), **losses}

    def _valid_generation(self, dit: SpatialDiT, device: torch.device, step: int,
                          writer: Any | None) -> dict[str, float]:
        """Generate from parametric valid requests (no direction lock), decode, measure the direction error."""
        records = [item["record"] for item in self.valid_items[: self.data.valid_clips]]
        cond_batch = requests(records, "parametric", [self.data.valid_seconds] * len(records))
        frames = round(self.data.valid_seconds * self.info.frame_rate)
        generator = torch.Generator(device=device).manual_seed(0)
        noise = torch.randn(len(records), self.info.latent_channels, frames, generator=generator, device=device)
        velocity = guided_velocity(dit, dit.conditioners(cond_batch), dit.conditioners(cond_batch.null_like()),
                                   self.data.valid_cfg_scale)
        latent = sample_euler(velocity, noise, flow_timesteps(self.data.valid_steps).to(device))
        foa = self.codec.decode(latent, round(self.data.valid_seconds * self.info.sample_rate))
        azimuth, elevation = broadband_doa(foa)
        requested = cond_batch.numbers
        error = great_circle_deg(requested["azimuth_deg"], requested["elevation_deg"], azimuth.cpu(), elevation.cpu())
        if writer is not None:
            for i in range(len(records)):
                w = foa[i, 0]
                writer.add_audio(f"generated_{i}/W", (w / w.abs().max().clamp_min(1e-6))[None].cpu(), step,
                                 sample_rate=self.info.sample_rate)
        return {"direction_error_median_deg": float(error.median()),
                "generated_w_rms": float(foa[:, 0].pow(2).mean().sqrt())}  # a collapse to silence shows here


def check_latents_for(config: DiTConfig, info: LatentsInfo, folder: Path) -> DiTConfig:
    """``config`` with the latent folder's codec fingerprint; LatentFolderError when the folder's latents do not fit
    the DiT (channels, rate, hop) or the config names another codec."""
    fits = (config.latent_channels, config.sample_rate, config.hop) == (info.latent_channels, info.sample_rate, info.hop)
    if not fits:
        raise LatentFolderError(
            f"{folder} holds {info.latent_channels}-channel latents at {info.sample_rate} Hz, hop {info.hop}; the DiT "
            f"config wants {config.latent_channels} channels at {config.sample_rate} Hz, hop {config.hop}")
    if config.codec_fingerprint not in ("", info.codec_fingerprint):
        raise LatentFolderError(f"the DiT config names codec {config.codec_fingerprint}, but {folder} was encoded by "
                                f"codec {info.codec_fingerprint}")
    return dataclasses.replace(config, codec_fingerprint=info.codec_fingerprint)


def make_dit_task(preset: str, data_dir: str | Path, config: TrainConfig, model_config: DiTConfig | None = None,
                  data_config: DiTDataConfig | None = None, codec: str | Path = "small",
                  elsa: str | Path = "small") -> DITTask:
    """Build the DiT, its data and its frozen helpers for ``run_training``.

    Args:
        preset: a ``DIT_PRESETS`` name (its model config and :data:`DIT_DATA_DEFAULTS` entry, unless
            ``model_config`` / ``data_config`` replace them).
        data_dir: a latent folder (``soundstage data encode``).
        codec: the codec that encoded ``data_dir`` (folder or bundled name), to decode validation clips.
        elsa: the ELSA whose text embeddings condition descriptive requests (folder or bundled name).

    Raises:
        LatentFolderError: the latents do not fit the DiT, or ``codec`` (or the config) is not the codec that
            made them (the message names both fingerprints).
    """
    from soundstage.elsa_encoder import ELSA

    data = data_config or DIT_DATA_DEFAULTS[preset]
    data_dir = Path(data_dir)
    info = read_latents_info(data_dir)
    dit_config = check_latents_for(model_config or dit_preset(preset), info, data_dir)
    if data.crop_seconds > dit_config.max_seconds:
        raise ValueError(f"crop_seconds {data.crop_seconds} exceeds the DiT's max_seconds {dit_config.max_seconds}")
    crop_frames = round(data.crop_seconds * info.frame_rate)
    frozen_codec = FOACodec.from_pretrained(codec)
    if codec_fingerprint(frozen_codec) != info.codec_fingerprint:
        raise LatentFolderError(f"codec {codec} has fingerprint {codec_fingerprint(frozen_codec)}, but {data_dir} was "
                                f"encoded by codec {info.codec_fingerprint}; give the codec that made it")
    torch.manual_seed(config.seed)  # model init is part of the run's identity
    model = SpatialDiT(dit_config)
    frozen_elsa = ELSA.from_pretrained(elsa)
    model.attach_elsa(frozen_elsa)  # before the loop's EMA copy, which shares the attached ELSA
    train = LatentDataset(data_dir, "train", crop_frames, seed=config.seed)
    valid = LatentDataset(data_dir, "valid", crop_frames, seed=config.seed)
    count = min(data.valid_items, len(valid))
    valid_items = [valid[i * len(valid) // count] for i in range(count)]
    return DITTask(model=model, train_dataset=train, valid_items=valid_items, info=info, codec=frozen_codec,
                   elsa=frozen_elsa, data=data, weight_decay=config.weight_decay)


__all__ = ["DIT_DATA_DEFAULTS", "DIT_TRAIN_DEFAULTS", "DITTask", "DiTDataConfig", "make_dit_task"]
