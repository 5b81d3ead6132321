"""Paired comparison of ``eval_generate.py`` results on the first N prompts they share.

Each ``eval_generate`` JSON keeps per-clip values in ``clips`` (clip ``i`` of the split, seed ``i``), so models run on
different numbers of prompts (a ``--max-clips`` run beside a full one) compare on the same first N prompts without
re-generating anything. Per model: medians of the direction errors (lock, lock with T30 <= 0.5 s, no lock, real
clips), descriptive accuracy with and without the lock and its clip count, class match of generated and real clips,
median diffuseness (real, lock, no lock), median seconds per locked generation, and the moving-source median of the
run (its 12 moving prompts do not depend on N).

Every model after the first is also compared with the first one prompt by prompt (``paired``), because a few
points on a few hundred prompts can be chance: the difference of the direction-error medians with a 95 % bootstrap
interval over prompts, the descriptive prompts only one of the two placed right with a two-sided sign-test p value,
and on how many moving prompts each had the lower median error.

    python benchmarks/compare_generate_evals.py --first 250 new=runs/benchmarks/generate_eval.json \\
        bundled=benchmarks/results/generate_eval.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
from results_io import add_out_argument, machine_info, write_results

DRY_T30_S = 0.5  # eval_generate's "t30_le_0.5" group
BOOTSTRAP_RESAMPLES = 2000


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [row[key] for row in rows if row.get(key) is not None]
    return float(np.median(values)) if values else float("nan")


def summarise(clips: list[dict[str, Any]], first: int) -> dict[str, Any]:
    """The measures above over ``clips[:first]`` (a result's per-clip rows)."""
    rows = clips[:first]
    dry = [row for row in rows if row["t30_s"] <= DRY_T30_S]
    described = [row for row in rows if row.get("descriptive")]
    return {
        "clips": len(rows),
        "lock_deg": _median(rows, "lock_error_deg"),
        "lock_dry_deg": _median(dry, "lock_error_deg"),
        "no_lock_deg": _median(rows, "no_lock_error_deg"),
        "real_deg": _median(rows, "real_error_deg"),
        "descriptive_clips": len(described),
        "descriptive": float(np.mean([row["descriptive"]["correct"] for row in described])) if described else None,
        "descriptive_no_lock": (float(np.mean([row["descriptive_no_lock"]["correct"] for row in described]))
                                if described else None),
        "class_generated": float(np.mean([row["semantic"]["generated_class"] == row["class"] for row in rows])),
        "class_real": float(np.mean([row["semantic"]["real_class"] == row["class"] for row in rows])),
        "diffuseness": {name: _median(rows, f"{name}_diffuseness") for name in ("real", "lock", "no_lock")},
        "seconds_per_generation_lock": float(np.median([row["timings"]["lock"]["total"] for row in rows])),
    }


def median_difference(first: list[dict[str, Any]], other: list[dict[str, Any]], key: str,
                      seed: int = 0) -> dict[str, Any]:
    """``median(other) - median(first)`` of ``key`` over the prompts both hold, with a 95 % paired bootstrap
    interval (prompts resampled, the same draw for both)."""
    pairs = np.array([(a[key], b[key]) for a, b in zip(first, other) if a.get(key) is not None
                      and b.get(key) is not None], dtype=np.float64).reshape(-1, 2)
    if len(pairs) == 0:
        return {"difference": None, "ci95": None, "prompts": 0}
    draws = np.random.default_rng(seed).integers(0, len(pairs), (BOOTSTRAP_RESAMPLES, len(pairs)))
    resampled = np.median(pairs[draws, 1], axis=1) - np.median(pairs[draws, 0], axis=1)
    return {"difference": float(np.median(pairs[:, 1]) - np.median(pairs[:, 0])),
            "ci95": [float(v) for v in np.percentile(resampled, [2.5, 97.5])], "prompts": len(pairs)}


def paired(first: dict[str, Any], other: dict[str, Any], prompts: int) -> dict[str, Any]:
    """``other`` against ``first`` prompt by prompt (two eval_generate results over the same first prompts)."""
    a, b = first["clips"][:prompts], other["clips"][:prompts]
    only_other = only_first = 0
    for x, y in zip(a, b):
        if x.get("descriptive_no_lock") and y.get("descriptive_no_lock"):
            only_first += x["descriptive_no_lock"]["correct"] and not y["descriptive_no_lock"]["correct"]
            only_other += y["descriptive_no_lock"]["correct"] and not x["descriptive_no_lock"]["correct"]
    discordant = only_first + only_other
    out: dict[str, Any] = {
        **{f"{key}_deg": median_difference(a, b, f"{key}_error_deg") for key in ("lock", "no_lock")},
        "descriptive_no_lock": {"only_this_right": only_other, "only_first_right": only_first,
                                "sign_test_p": float(scipy.stats.binomtest(only_other, discordant).pvalue)
                                if discordant else None},
    }
    moving_a, moving_b = first.get("moving_clips") or [], other.get("moving_clips") or []
    if moving_a and [m["prompt"] for m in moving_a] == [m["prompt"] for m in moving_b]:
        medians = [(x["median_deg"], y["median_deg"]) for x, y in zip(moving_a, moving_b)]
        out["moving_prompts"] = {"this_lower": sum(y < x for x, y in medians), "first_lower": sum(x < y for x, y in medians),
                                 "prompts": len(medians)}
    return out


def compare(results: dict[str, Path], first: int | None) -> dict[str, Any]:
    """Summaries of every named result over the first ``first`` prompts (default: as many as all of them hold).

    Raises:
        ValueError: when their first prompts differ (clip paths) or ``first`` is more than one holds.
    """
    loaded = {name: json.loads(Path(path).read_text()) for name, path in results.items()}
    shared = min(len(r["clips"]) for r in loaded.values())
    first = shared if first is None else first
    if first > shared:
        raise ValueError(f"--first {first}: the smallest result holds {shared} prompts")
    prompts = {tuple(row["path"] for row in r["clips"][:first]) for r in loaded.values()}
    if len(prompts) > 1:
        raise ValueError(f"the results' first {first} prompts differ (other clips or another split); compare runs "
                         "of one dataset split")
    models = {name: summarise(r["clips"], first) | {"moving_deg": r["moving"]["median_deg"],
                                                     "model": r["model"]} for name, r in loaded.items()}
    (base, base_result), *others = loaded.items()
    return {"first_prompts": first, "models": models,
            "paired": {f"{name} vs {base}": paired(base_result, r, first) for name, r in others},
            "machine": machine_info()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="NAME=PATH of an eval_generate JSON (two or more)")
    parser.add_argument("--first", type=int, default=None, help="prompts to compare (default: all they share)")
    add_out_argument(parser, "compare_generate_evals")
    args = parser.parse_args(argv)
    pairs = dict(item.split("=", 1) for item in args.results if "=" in item)
    if len(pairs) != len(args.results) or len(pairs) < 2:
        parser.error("give two or more results as NAME=PATH")
    comparison = compare({name: Path(path) for name, path in pairs.items()}, args.first)
    for name, summary in comparison["models"].items():
        print(f"{name}: lock {summary['lock_deg']:.2f} deg, no lock {summary['no_lock_deg']:.1f} deg, moving "
              f"{summary['moving_deg']:.2f} deg, descriptive alone {summary['descriptive_no_lock']:.1%}, "
              f"class {summary['class_generated']:.1%} (real {summary['class_real']:.1%})")
    for name, pair in comparison["paired"].items():
        no_lock, described = pair["no_lock_deg"], pair["descriptive_no_lock"]
        shift = "n/a" if no_lock["difference"] is None else "{:+.1f} deg [{:+.1f}, {:+.1f}]".format(
            no_lock["difference"], *no_lock["ci95"])
        p_value = "n/a" if described["sign_test_p"] is None else f"{described['sign_test_p']:.3f}"
        print(f"{name}: no-lock median {shift} (95 % interval); descriptive right only here "
              f"{described['only_this_right']}, only there {described['only_first_right']} (sign test p {p_value})")
    write_results(args.out, comparison)


if __name__ == "__main__":
    main()
