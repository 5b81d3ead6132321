"""Fixtures of the app tests: the tiny pipeline and a workspace for the handler tests (in-process, fast), and one
``soundstage app`` server with the bundled model for the API, browser and load tests (a child process, started once
per test session by ``benchmarks/bench_app_load.py``'s :class:`AppServer`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from soundstage.app import Workspace
from soundstage.sample import SoundstagePipeline
from tests.sample.tiny_models import tiny_components

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_app_load import AppServer  # the benchmark's folder is on the path only from here


@pytest.fixture(scope="session")
def tiny_pipe() -> SoundstagePipeline:
    return SoundstagePipeline(*tiny_components())


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    space = Workspace()
    yield space
    space.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """``soundstage app --model small`` on a free loopback port; stopped (SIGTERM) after the last test using it."""
    server = AppServer("small", log=tmp_path_factory.mktemp("app") / "server.log").start()
    yield server
    server.stop()
