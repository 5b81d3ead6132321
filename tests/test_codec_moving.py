"""benchmarks/codec_moving.py: the yaw sweep turns a field as documented and the path error has known answers."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest

from soundstage.foa import encode_mono
from soundstage.metrics.spatial_metrics import gated_framewise_doa

from .benchmark_scripts import benchmark_module

SR = 16000


@pytest.fixture(scope="module")
def cm() -> Iterator[ModuleType]:
    with benchmark_module("codec_moving") as module:
        yield module


def _front_noise() -> np.ndarray:
    return encode_mono(np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1, 0.0, 0.0)


def test_the_sweep_turns_a_front_source_to_the_requested_yaw(cm: ModuleType) -> None:
    azimuth, elevation, keep = gated_framewise_doa(cm.yaw_sweep(_front_noise(), 90.0), SR)
    assert keep.all() and abs(azimuth[0]) < 3 and abs(azimuth[-1] - 90) < 3  # left (+90) at the end
    assert np.all(np.diff(azimuth) > 0) and np.abs(elevation).max() < 0.1


def test_path_error_is_zero_for_the_same_path_and_the_offset_for_a_turned_one(cm: ModuleType) -> None:
    moving = cm.yaw_sweep(_front_noise(), -180.0)
    assert cm.path_error_deg(moving, moving, SR) < 1e-6
    offset = encode_mono(np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1, 30.0, 0.0)
    assert cm.path_error_deg(cm.yaw_sweep(offset, -180.0), moving, SR) == pytest.approx(30.0, abs=0.5)
