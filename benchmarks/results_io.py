"""What every benchmark script shares: a description of the machine, the ``--out`` option and the JSON writer.

A run writes to ``runs/benchmarks/<name>.json`` (not committed) unless given ``--out``: the committed results in
``benchmarks/results/`` change only when a maintainer asks for it with ``--out benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS_DIR = ROOT / "runs" / "benchmarks"  # runs/ is gitignored


def machine_info() -> dict[str, Any]:
    """CPU, core count, Python and (when importable) torch versions, recorded next to every result."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                            "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out``: where the JSON goes, by default ``runs/benchmarks/<name>.json`` (never a committed result)."""
    parser.add_argument(
        "--out", type=Path, default=RUNS_DIR / f"{name}.json",
        help=f"JSON file for the results (default: runs/benchmarks/{name}.json, not committed); a maintainer "
             f"updates the committed result with --out benchmarks/results/{name}.json",
    )


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` as indented JSON (creating folders) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
