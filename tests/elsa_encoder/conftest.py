from __future__ import annotations

from pathlib import Path

import pytest
import torch

from soundstage.elsa_encoder import ELSA, elsa_preset

from .synthetic import make_elsa_dataset


@pytest.fixture(scope="session")
def elsa_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic FOA dataset at 16 kHz (the tiny preset's rate): 12 train, 4 valid, 4 test clips."""
    return make_elsa_dataset(tmp_path_factory.mktemp("elsa_data"))


@pytest.fixture
def tiny_elsa() -> ELSA:
    torch.manual_seed(0)
    return ELSA(elsa_preset("tiny")).eval()
