"""The benchmark scripts write to runs/benchmarks/ unless given --out: a run never overwrites a committed result."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"bench_codec": "codec", "bench_elsa": "elsa", "bench_spatialize": "spatialize", "check_labels": "labels",
           "bench_generate": "generate", "eval_generate": "generate_eval", "corpus_report": "corpus"}


@pytest.fixture(scope="module", autouse=True)
def benchmarks_on_path() -> Iterator[None]:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import results_io from their own folder
    yield
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize(("script", "name"), SCRIPTS.items())
def test_default_output_is_not_a_committed_result(script: str, name: str) -> None:
    parser = importlib.import_module(script).build_parser()
    default = parser.parse_args([]).out
    assert default == ROOT / "runs" / "benchmarks" / f"{name}.json"
    assert "/runs/" in (ROOT / ".gitignore").read_text().split()  # not committed
    committed = Path("benchmarks/results") / f"{name}.json"
    assert parser.parse_args(["--out", str(committed)]).out == committed
    assert f"--out benchmarks/results/{name}.json" in " ".join(parser.format_help().split())
