"""A pretrained sound-effects audio embedding for Fréchet and kernel distances: aiSFX, in our own code.

aiSFX (Ma and Lerch, "Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR 2022)
is a 9-layer CNN trained on sound-effects libraries to classify Universal Category System classes; its 512-d
embedding of each ~2-s block of audio is the semantic space our FAD and KAD are measured in. The package that
publishes it (``aisfx`` on PyPI) pins old numpy and librosa, so the network and its front end are written here and
its weights are converted once to ``soundstage/pretrained/aisfx/`` (``tools/convert_aisfx.py``); nothing imports the
package at run time, and ``tests/evaluation/test_aisfx.py`` checks our embedding against the package's own numbers.

Front end (the package's original Essentia one, reproduced): mono audio at 44.1 kHz; frames of 2048 samples every
1024, the first centred on sample 0 (zero padding before the start and after the end: ``ceil(T / 1024) + 1``
frames); a symmetric Hann window; power spectrum; 96 triangular HTK-mel bands from 0 Hz to 22.05 kHz, triangular in
mel and each summing to 1; ``log10(1 + 10^4 power)``; divided by 9.4578 (the package's "original" normalisation);
blocks of 100 frames (2.3 s) every 50 frames, the last incomplete block dropped unless it is the only one
(zero-padded). Network: four blocks of two 3x3 conv + BatchNorm + ReLU, 2x2 max pooling after the first three, then
the mean over frequency and the max over time: ``(blocks, 512)``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.audio import resample
from soundstage.common.pretrained import PretrainedMixin


@dataclass
class AiSFXConfig:
    sample_rate: int = 44100  # Hz; other rates are resampled (polyphase) on the way in
    n_fft: int = 2048  # frame length in samples (46 ms); also the FFT size
    hop_length: int = 1024
    n_mels: int = 96
    f_min: float = 0.0
    f_max: float = 22050.0
    log_gain: float = 1e4  # log10(1 + log_gain * mel power): Essentia's "shift_scale_log" compression
    norm_max: float = 9.457798957824707  # the package's min-max normalisation (min 0) over its training spectrograms
    block_frames: int = 100  # frames per embedding block (2.3 s)
    block_hop_frames: int = 50  # the package's default hop: half a block
    channels: tuple[int, ...] = (64, 128, 256, 512)  # conv widths; the last is the embedding size

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        checks = [
            (0 < self.hop_length <= self.n_fft, "need 0 < hop_length <= n_fft"),
            (0 <= self.f_min < self.f_max <= self.sample_rate / 2, "need 0 <= f_min < f_max <= sample_rate / 2"),
            (0 < self.block_hop_frames <= self.block_frames, "need 0 < block_hop_frames <= block_frames"),
            (len(self.channels) == 4 and min(self.channels) > 0, "channels must be 4 positive widths"),
            (self.norm_max > 0 and self.log_gain > 0, "norm_max and log_gain must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"AiSFXConfig: {message}")

    @property
    def embed_dim(self) -> int:
        return self.channels[-1]

    @property
    def block_seconds(self) -> float:
        return self.block_frames * self.hop_length / self.sample_rate


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)  # HTK


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def sfx_mel_filters(config: AiSFXConfig) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` triangles, linear in HTK mel between ``n_mels + 2`` equally spaced mel edges, each
    row summing to 1 (Essentia ``MelBands(warpingFormula='htkMel', weighting='warping', normalize='unit_sum')``)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(config.f_min)), _hz_to_mel(np.float64(config.f_max)),
                                   config.n_mels + 2))
    freqs = np.arange(config.n_fft // 2 + 1) * config.sample_rate / config.n_fft
    mel, mel_edges = _hz_to_mel(freqs), _hz_to_mel(edges)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    m_low, m_centre, m_high = mel_edges[:-2, None], mel_edges[1:-1, None], mel_edges[2:, None]
    rising = np.where((freqs >= low) & (freqs < centre), (mel - m_low) / (m_centre - m_low), 0.0)
    falling = np.where((freqs >= centre) & (freqs < high), (m_high - mel) / (m_high - m_centre), 0.0)
    weights = rising + falling
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
    return torch.from_numpy(weights.astype(np.float32))


def frame_count(samples: int, hop_length: int) -> int:
    """Frames of a signal of ``samples``: the first is centred on sample 0, the last starts before the end."""
    return math.ceil(samples / hop_length) + 1


def block_starts(frames: int, block: int, hop: int) -> list[int]:
    """First frame of each embedding block: every ``hop`` frames, the last incomplete block dropped unless it is the
    only one (a clip shorter than one block gives one zero-padded block)."""
    count = math.ceil((frames - block) / hop + 1)
    if (frames - block) % hop != 0:
        count -= 1
    return [i * hop for i in range(max(count, 1))]


class SFXFrontEnd(nn.Module):
    """Mono audio ``(N, T)`` at 44.1 kHz -> normalised log-mel frames ``(N, frames, n_mels)``. No parameters."""

    def __init__(self, config: AiSFXConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("filters", sfx_mel_filters(config), persistent=False)
        n = torch.arange(config.n_fft, dtype=torch.float64)
        window = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / (config.n_fft - 1))  # symmetric Hann
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        frames = frame_count(audio.shape[-1], c.hop_length)
        half = c.n_fft // 2
        padded = F.pad(audio, (half, (frames - 1) * c.hop_length + half - audio.shape[-1]))
        chunks = padded.unfold(-1, c.n_fft, c.hop_length)  # (N, frames, n_fft)
        power = torch.fft.rfft(chunks * self.window, dim=-1).abs().square()
        mel = power @ self.filters.T  # (N, frames, n_mels)
        return torch.log10(1.0 + c.log_gain * mel) / c.norm_max


class _ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class AiSFX(nn.Module, PretrainedMixin):
    """The aiSFX embedding network with its front end; ``from_pretrained("aisfx")`` loads the converted weights.

    :meth:`embed` takes mono signals and returns one 512-d embedding per 2.3-s block (not normalised: Fréchet and
    kernel distances are measured on the raw features, as the network's classifier saw them).
    """

    config_class = AiSFXConfig
    format_name = "soundstage.aisfx"
    pretrained_subfolder = "aisfx"

    def __init__(self, config: AiSFXConfig) -> None:
        super().__init__()
        self.config = config
        self.front_end = SFXFrontEnd(config)
        widths = (1, *config.channels)
        self.blocks = nn.ModuleList(_ConvBlock(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, logmel_blocks: torch.Tensor) -> torch.Tensor:
        """``(B, block_frames, n_mels)`` normalised log-mel blocks -> ``(B, embed_dim)`` embeddings."""
        # channels-last convolutions run ~1.6x faster on CPU (oneDNN) and give the same numbers
        x = logmel_blocks.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, time, freq)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=3).amax(dim=2)

    def logmel_blocks(self, audio: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` mono audio at ``config.sample_rate`` -> ``(N, blocks, block_frames, n_mels)``."""
        c = self.config
        frames = self.front_end(audio)
        starts = block_starts(frames.shape[1], c.block_frames, c.block_hop_frames)
        frames = F.pad(frames, (0, 0, 0, max(0, starts[-1] + c.block_frames - frames.shape[1])))
        return torch.stack([frames[:, s:s + c.block_frames] for s in starts], dim=1)

    @torch.inference_mode()
    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int, batch_size: int = 32) -> torch.Tensor:
        """Embeddings ``(N, blocks, embed_dim)`` of ``(T,)`` or ``(N, T)`` float mono signals of one length.

        Signals at another rate than ``config.sample_rate`` are resampled (polyphase) first.
        """
        array = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float32)
        array = np.atleast_2d(array)
        if array.ndim != 2 or array.shape[-1] == 0:
            raise ValueError(f"expected mono signals (N, T) with T > 0, got shape {array.shape}")
        if int(sample_rate) != self.config.sample_rate:
            array = resample(array, int(sample_rate), self.config.sample_rate)
        device = next(self.parameters()).device
        self.to(memory_format=torch.channels_last)  # weights too (a no-op once done; state-dict values unchanged)
        blocks = self.logmel_blocks(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device))
        n, b = blocks.shape[:2]
        flat = blocks.reshape(n * b, *blocks.shape[2:])
        out = torch.cat([self(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)])
        return out.reshape(n, b, -1).cpu()
