"""FOA dataset -> latent folder (``soundstage data encode``): the codec's posterior of every clip, K yaws each.

Each clip of the dataset's manifest (all splits) is encoded in ``rotations`` versions: version 0 as recorded,
the others turned by a yaw drawn from ``default_rng((seed, clip index, k))`` (an exact FOA rotation, so the DiT sees
more directions per clip than the dataset holds). Yaw +90 turns front to left, so a source at azimuth ``a`` moves
to ``wrap(a + yaw)``; the spatial caption is regenerated for the new direction. Layout: :mod:`soundstage.data.latents`.

Resumable and shardable like ``soundstage data spatialize``: each item is one safetensors file written atomically,
carrying its manifest record in its metadata; a re-run skips existing files; shard ``I`` of ``N`` takes the clips
``i % N == I``; whichever run finds every clip done assembles ``manifest.jsonl`` and ``skipped.jsonl``. A folder made
by another codec (fingerprint) or with other rotations or seed is refused; an unreadable clip is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from soundstage.codec import FOACodec, codec_fingerprint
from soundstage.common.audio import AudioError, load_audio
from soundstage.common.errors import UsageError
from soundstage.data.captions import spatial_caption
from soundstage.data.dataset import LABEL_KEYS
from soundstage.data.latents import (
    LATENTS_INFO_NAME,
    LATENTS_SUBDIR,
    LatentFolderError,
    LatentsInfo,
    read_latents_info,
    write_latents_info,
)
from soundstage.data.manifest import MANIFEST_NAME, read_manifest, write_jsonl, write_manifest
from soundstage.foa import rotate_foa, wrap_degrees

logger = logging.getLogger(__name__)

DEFAULT_ROTATIONS = 4  # 964 clips x 4 with the small codec: ~10 CPU-minutes, ~5 min on 2 idle cores (~110 MB)
SKIPPED_SUBDIR = "skipped"
SKIPPED_NAME = "skipped.jsonl"
CHECKED_FIELDS = ("codec_fingerprint", "rotations", "seed")  # a folder mixing any of these would be two datasets


@dataclass
class EncodeReport:
    """What one call of :func:`encode_latents` did."""

    out_dir: Path
    clips: int = 0  # clips in the source manifest
    shard_clips: int = 0  # clips of this shard
    encoded: int = 0  # items (clip x rotation) written in this run
    reused: int = 0  # items already there
    skipped: int = 0  # clips of this shard that could not be encoded
    skip_reasons: dict[str, int] = field(default_factory=dict)
    items: int = 0  # records in the assembled manifest (0 while other shards are unfinished)
    complete: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skip_reasons.items())) or "none"
        state = (f"manifest {self.out_dir / MANIFEST_NAME} ({self.items} items)" if self.complete
                 else "manifest not assembled yet (other shards unfinished)")
        return (f"encoded {self.encoded} items in {self.seconds:.1f} s; {self.reused} already done; "
                f"{self.skipped} clips skipped ({reasons}); {self.shard_clips} clips in this shard of {self.clips}; "
                f"{state}")


def item_key(record: dict[str, Any], version: int) -> str:
    """File-name-safe unique name of a clip's version: readable stem + hash of the clip's path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(record["path"]).stem).strip("-")[:60] or "clip"
    return f"{stem}-{hashlib.sha1(record['path'].encode()).hexdigest()[:8]}_r{version}"


def rotated_record(record: dict[str, Any], clip_index: int, version: int, seed: int) -> dict[str, Any]:
    """The manifest record of version ``version`` of a clip (without ``latent_frames``): the yaw, the moved azimuth
    and the spatial caption regenerated for it; version 0 keeps the clip and its caption as recorded."""
    out = {**record, "audio_path": record["path"], "path": f"{LATENTS_SUBDIR}/{item_key(record, version)}.safetensors",
           "rotation": version, "yaw_deg": 0.0}
    if version > 0:
        rng = np.random.default_rng((seed, clip_index, version))
        out["yaw_deg"] = float(rng.uniform(-180.0, 180.0))
        out["azimuth_deg"] = float(wrap_degrees(float(record["azimuth_deg"]) + out["yaw_deg"]))
        out["spatial_caption"] = spatial_caption(record["caption"], rng=rng, **{k: out[k] for k in LABEL_KEYS})
    return out


def _read_item(out_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest record stored in an item's file, or None when the item is not done."""
    path = out_dir / record["path"]
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {})["record"])


def _save_item(out_dir: Path, record: dict[str, Any], mean: torch.Tensor, std: torch.Tensor) -> None:
    path = out_dir / record["path"]
    tmp = path.with_name(path.name + ".part")
    tensors = {"mean": mean.float().contiguous(), "std": std.float().contiguous()}
    save_file(tensors, str(tmp), metadata={"record": json.dumps(record, ensure_ascii=False)})
    tmp.replace(path)


def _skip_file(out_dir: Path, record: dict[str, Any]) -> Path:
    return out_dir / SKIPPED_SUBDIR / f"{item_key(record, 0)}.json"


def _check_folder(out_dir: Path, info: LatentsInfo) -> None:
    """Refuse to add to a folder made by another codec or with other rotations or seed (message names both)."""
    if not (out_dir / LATENTS_INFO_NAME).exists():
        return
    have = read_latents_info(out_dir)
    differ = [f"{k}: folder {getattr(have, k)!r}, this run {getattr(info, k)!r}" for k in CHECKED_FIELDS
              if getattr(have, k) != getattr(info, k)]
    if differ:
        raise LatentFolderError(f"{out_dir} was made with other settings ({'; '.join(differ)}); encode into another "
                                "--out or re-run with the settings it was made with")


def encode_latents(
    codec: FOACodec,
    data_dir: str | Path,
    out_dir: str | Path,
    rotations: int = DEFAULT_ROTATIONS,
    shard: int = 0,
    num_shards: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> EncodeReport:
    """Encode every clip of ``data_dir``'s manifest in ``rotations`` yaw versions into the latent folder ``out_dir``.

    Stores the UNSCALED posterior ``mean`` and ``std`` ``(C, ceil(T / hop))`` float32 per item (the scale is in
    ``latents.json``). Clips are decoded at the codec's sample rate. See the module docstring for resumption,
    sharding and refusals.

    Raises:
        LatentFolderError: ``out_dir`` was made by another codec or with other ``rotations`` or ``seed``.
        ManifestError: ``data_dir`` has no valid manifest.
    """
    start = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not 0 <= shard < num_shards:
        raise UsageError(f"shard must be in [0, num_shards={num_shards}), got {shard}")
    if rotations < 1:
        raise UsageError(f"rotations must be >= 1, got {rotations}")
    sources = read_manifest(data_dir, spatial=True)
    cfg = codec.config
    info = LatentsInfo(codec_fingerprint=codec_fingerprint(codec), latent_scale=float(codec.latent_scale),
                       latent_channels=cfg.latent_channels, hop=cfg.hop, sample_rate=cfg.sample_rate,
                       rotations=rotations, seed=seed, source_dataset=str(data_dir.resolve()),
                       latent_mean=cfg.latent_mean, latent_std=cfg.latent_std)
    _check_folder(out_dir, info)
    write_latents_info(out_dir, info)
    (out_dir / LATENTS_SUBDIR).mkdir(exist_ok=True)

    report = EncodeReport(out_dir=out_dir, clips=len(sources))
    mine = [i for i in range(len(sources)) if i % num_shards == shard]
    report.shard_clips = len(mine)
    reasons: Counter[str] = Counter()
    codec.eval()
    for i in tqdm(mine, desc="encode", unit="clip", disable=not progress):
        if _skip_file(out_dir, sources[i]).exists():
            reasons["unreadable audio"] += 1
            continue
        records = [rotated_record(sources[i], i, k, seed) for k in range(rotations)]
        todo = [r for r in records if not (out_dir / r["path"]).exists()]
        report.reused += len(records) - len(todo)
        if not todo:
            continue
        try:
            audio, _ = load_audio(data_dir / sources[i]["path"], sample_rate=cfg.sample_rate, channels=4)
        except AudioError as exc:
            logger.warning("skipping clip %d: %s", i, exc)
            write_jsonl(_skip_file(out_dir, sources[i]), [{"path": sources[i]["path"], "reason": "unreadable audio",
                                                           "detail": str(exc)}])
            reasons["unreadable audio"] += 1
            continue
        # all versions in one batch even when some are done: a resumed run then writes the bytes a straight one would
        foa = torch.from_numpy(audio)
        batch = torch.stack([rotate_foa(foa, yaw_deg=r["yaw_deg"]) for r in records])
        with torch.inference_mode():
            mean, std = codec.posterior(codec.check_audio(batch))
        for record, m, s in zip(records, mean, std):
            if record in todo:
                _save_item(out_dir, {**record, "latent_frames": int(m.shape[-1])}, m, s)
        report.encoded += len(todo)
    report.skip_reasons = dict(reasons)
    report.skipped = sum(reasons.values())
    total = assemble_latents(data_dir, out_dir)
    report.complete, report.items = total is not None, total or 0
    report.seconds = time.perf_counter() - start
    logger.info(report.summary())
    return report


def assemble_latents(data_dir: str | Path, out_dir: str | Path) -> int | None:
    """Merge the items' records into ``manifest.jsonl`` (source order, then version) and the skipped clips into
    ``skipped.jsonl``, once every clip is done or skipped; returns the number of items, or None if some are not."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    info = read_latents_info(out_dir)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for i, source in enumerate(read_manifest(data_dir, spatial=True)):
        if _skip_file(out_dir, source).exists():
            skipped.extend(json.loads(line) for line in _skip_file(out_dir, source).read_text().splitlines())
            continue
        for k in range(info.rotations):
            record = _read_item(out_dir, rotated_record(source, i, k, info.seed))
            if record is None:
                return None
            records.append(record)
    write_jsonl(out_dir / SKIPPED_NAME, skipped)
    if records:
        write_manifest(out_dir, records)
    return len(records)
