"""Our aiSFX (weights converted once to soundstage/pretrained/aisfx) reproduces the package's own embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundstage.common.pretrained import FormatError
from soundstage.evaluation.aisfx import AiSFX, AiSFXConfig, block_starts, frame_count
from soundstage.evaluation.generated import load_aisfx

from .fixtures import aisfx_fixture

REFERENCE = Path(__file__).parent / "data" / "aisfx_reference.npy"


def test_embedding_equals_the_packages_numbers_on_the_fixture() -> None:
    """data/aisfx_reference.npy is the aisfx 0.1.2 package's embedding (its Essentia front end, normalisation,
    blocking and CrossNet class) of the same samples, written by tools/convert_aisfx.py --reference."""
    samples, rate = aisfx_fixture()
    ours = load_aisfx().embed(samples.astype(np.float32) / 32768.0, rate)[0].numpy()
    reference = np.load(REFERENCE)
    assert ours.shape == reference.shape == (3, 512)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_framing_and_blocking_follow_the_package() -> None:
    assert [frame_count(n, 1024) for n in (1023, 1024, 1025, 10240, 10241)] == [2, 2, 3, 11, 12]
    assert block_starts(217, 100, 50) == [0, 50, 100]  # 5 s: the partial fourth block is dropped
    assert block_starts(200, 100, 50) == [0, 50, 100]  # exact fit keeps the last block
    assert block_starts(40, 100, 50) == [0]  # shorter than a block: one zero-padded block


def test_other_rates_are_resampled_and_batches_agree() -> None:
    torch.manual_seed(0)
    model = AiSFX(AiSFXConfig(channels=(4, 4, 8, 8))).eval()
    noise = np.random.default_rng(0).standard_normal((3, 24000 * 3)).astype(np.float32) * 0.1
    together = model.embed(noise, 24000)
    assert together.shape == (3, 1, 8)  # 3 s at 24 kHz -> 131 frames at 44.1 kHz: one whole block
    np.testing.assert_allclose(model.embed(noise[1], 24000)[0], together[1], rtol=1e-5, atol=1e-6)


def test_a_missing_weights_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="convert_aisfx.py"):
        load_aisfx(tmp_path / "nowhere")
