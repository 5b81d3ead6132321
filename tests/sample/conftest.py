"""The tiny dummy pipeline of the pipeline and batch tests (components: tests/sample/tiny_models.py)."""

from __future__ import annotations

import pytest

from soundstage.sample import SoundstagePipeline

from .tiny_models import tiny_components


@pytest.fixture(scope="session")
def pipe() -> SoundstagePipeline:
    return SoundstagePipeline(*tiny_components())
