"""Convert the aiSFX checkpoint once into our component folder, and compute the package's reference embedding.

The aiSFX weights ship inside the ``aisfx`` wheel on PyPI as a pickled ``(state_dict, dataset_dict)`` tuple. This
script reads that file with ``torch.load(weights_only=True)`` and an explicit allow-list of the three numpy globals
the dataset dict's ``numpy.int64`` indices need (never an unrestricted pickle load), keeps the embedding network
(the per-dataset classifier heads are not used), and writes ``config.json`` + ``model.safetensors`` + the licence
to ``soundstage/pretrained/aisfx/`` (``soundstage.evaluation.aisfx.AiSFX``).

    pip download --no-deps aisfx==0.1.2 -d /tmp/aisfx        # the wheel; nothing is installed
    python tools/convert_aisfx.py --wheel /tmp/aisfx/aisfx-0.1.2-py2.py3-none-any.whl

``--reference FILE.npy`` also writes the package's own embedding of the synthetic test fixture
(``tests/evaluation/fixtures.py: aisfx_fixture``): the package's Essentia front end, its normalisation and blocking,
and its ``CrossNet`` model class, all imported from the wheel. The package pins numpy 1.23 but these parts run on
numpy 2; Essentia (``pip install essentia``) must be importable, so run it from a throwaway virtual environment:

    python -m venv --system-site-packages /tmp/venv_ess && /tmp/venv_ess/bin/pip install essentia
    /tmp/venv_ess/bin/python tools/convert_aisfx.py --wheel WHEEL --out /tmp/unused \\
        --reference tests/evaluation/data/aisfx_reference.npy
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soundstage.evaluation.aisfx import AiSFX, AiSFXConfig

CHECKPOINT = "aisfx/models/checkpoint.pth"
LICENSE = "aisfx-0.1.2.dist-info/licenses/LICENSE"
NOTICE = """# aiSFX weights

`model.safetensors` holds the embedding network of aiSFX 0.1.2 ("X-Sequential-CE"), converted from the
`aisfx/models/checkpoint.pth` of the `aisfx` wheel on PyPI by `tools/convert_aisfx.py`: the same tensors, renamed
(`embedding_net.conv_blockK.` -> `blocks.K-1.`), stored as safetensors; the per-dataset classifier heads were left
out. The architecture and front end are re-implemented in `soundstage/evaluation/aisfx.py`.

Authors: Alison Bernice Ma and Alexander Lerch, "Representation Learning for the Automatic Indexing of Sound
Effects Libraries", Proceedings of the 23rd International Society for Music Information Retrieval Conference
(ISMIR), 2022, pp. 866-875. Source: github.com/alisonbma/aisfx.

Licence: the wheel's package metadata says MIT, and its LICENSE file, which covers the pre-trained model and the
paper, is the Creative Commons Attribution 4.0 International licence (CC BY 4.0), copied verbatim in
`LICENSE` beside this file. Changes made: format conversion and renaming only, as described above.
"""


def _safe_globals() -> list[Any]:
    """The numpy globals of the checkpoint's ``numpy.int64`` scalars, under the name numpy 1 pickled them with."""
    from numpy._core.multiarray import scalar

    return [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]


def load_checkpoint(wheel: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, dataset_dict)`` of the wheel's checkpoint, loaded with ``weights_only=True``."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(CHECKPOINT)
    with torch.serialization.safe_globals(_safe_globals()):
        state, datasets = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state, datasets


def embedding_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The embedding network's tensors under our names."""
    out = {}
    for key, value in state.items():
        match = re.fullmatch(r"embedding_net\.conv_block(\d)\.(.+)", key)
        if match:
            out[f"blocks.{int(match.group(1)) - 1}.{match.group(2)}"] = value.contiguous()
    return out


def convert(wheel: Path, out: Path) -> Path:
    state, _ = load_checkpoint(wheel)
    model = AiSFX(AiSFXConfig())
    model.load_state_dict(embedding_state(state), strict=True)
    model.save_pretrained(out)
    with zipfile.ZipFile(wheel) as archive:
        (out / "LICENSE").write_bytes(archive.read(LICENSE))
    (out / "README.md").write_text(NOTICE)
    return out


def package_reference(wheel: Path, out_npy: Path) -> np.ndarray:
    """The package's own embedding ``(blocks, 512)`` of the fixture: its Essentia spectrogram, normalisation,
    blocking and model class, imported from the wheel (weights loaded as in :func:`load_checkpoint`)."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT / "tests" / "evaluation"))
    from fixtures import aisfx_fixture  # tests/evaluation/fixtures.py

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        sys.path.insert(0, tmp)
        from aisfx import inference
        from aisfx.preprocessing import spectrogram_normalize
        from aisfx.spectrogram.spectrogram_essentia import compute_spectrogram

        signal, rate = aisfx_fixture()
        wav = Path(tmp) / "fixture.wav"
        sf.write(str(wav), signal, rate, subtype="PCM_16")
        spec = compute_spectrogram(filename=str(wav), sr=inference.SAMPLE_RATE, block_size=inference.SPEC_BLOCK_LENGTH,
                                   hop_size=inference.SPEC_HOP_LENGTH, n_mels=inference.MEL_BINS,
                                   f_min=inference.F_MIN, f_max=inference.F_MAX)
        spec = spectrogram_normalize(spec, spec_norm="original")
        state, datasets = load_checkpoint(wheel)
        model = inference.load_bestModel(state, datasets, "cpu")
        embedding = inference.model_get_embedding(spec, 0.5, True, model, "cpu").numpy()
    out_npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_npy, embedding.astype(np.float32))
    return embedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help="aisfx-0.1.2-py2.py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=ROOT / "soundstage" / "pretrained" / "aisfx")
    parser.add_argument("--reference", type=Path, default=None, help="also write the package's fixture embedding")
    args = parser.parse_args()
    if args.reference is None:
        if args.out.exists():
            shutil.rmtree(args.out)
        print(f"wrote {convert(args.wheel, args.out)}")
    else:
        embedding = package_reference(args.wheel, args.reference)
        print(f"wrote {args.reference}: {embedding.shape}")


if __name__ == "__main__":
    main()
