"""Report on a mono corpus and the FOA dataset built from it: size, classes, packages, licences, duplicates, balance.

Reads the corpus's ``manifest.jsonl`` and ``skipped.jsonl`` (as ``soundstage data sfx`` writes them) and, with
``--data``, the FOA dataset's manifest for the share of each class in the training split. Prints a summary, writes
JSON (``--out``, default ``runs/benchmarks/corpus.json``) and, with ``--plot``, a bar chart of clips per class.

    python benchmarks/corpus_report.py --corpus datasets/sfx_mono --data datasets/sfx_foa --plot class_balance.png
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from results_io import add_out_argument, write_results  # benchmarks/results_io.py (the script's folder)

from soundstage.data.manifest import jsonl_rows, read_manifest


def _package(record: dict[str, Any]) -> str:
    """``debian:<package>/<member>`` -> package; other sources -> their scheme."""
    source = str(record.get("source", ""))
    scheme, _, rest = source.partition(":")
    return rest.split("/", 1)[0] if scheme == "debian" else scheme or "unknown"


def corpus_report(corpus: Path, data: Path | None = None) -> dict[str, Any]:
    """Counts of a corpus (and the training split of its FOA dataset); see the module docstring."""
    records = read_manifest(corpus)
    skipped_path = corpus / "skipped.jsonl"
    skipped = [row for _, row in jsonl_rows(skipped_path)] if skipped_path.is_file() else []
    seconds = [r["num_frames"] / r["sample_rate"] for r in records]
    per_class, per_package, seconds_per_class = Counter(), Counter(), Counter()
    per_package_class: dict[str, Counter[str]] = defaultdict(Counter)
    for record, length in zip(records, seconds, strict=True):
        per_class[record["class"]] += 1
        seconds_per_class[record["class"]] += length
        per_package[_package(record)] += 1
        per_package_class[_package(record)][record["class"]] += 1
    duplicates = [s for s in skipped if s["reason"] == "duplicate"]
    result: dict[str, Any] = {
        "corpus": str(corpus),
        "clips": len(records),
        "classes": len(per_class),
        "hours": sum(seconds) / 3600,
        "median_clip_s": sorted(seconds)[len(seconds) // 2] if seconds else 0.0,
        "captions_distinct": len({r["caption"] for r in records}),
        "largest_class_fraction": max(per_class.values()) / len(records) if records else 0.0,
        "per_class": dict(per_class.most_common()),
        "seconds_per_class": {k: round(v, 1) for k, v in seconds_per_class.most_common()},
        "per_package": dict(sorted(per_package.items())),
        "classes_per_package": {p: len(c) for p, c in sorted(per_package_class.items())},
        "licences": dict(Counter(r["licence"].rsplit(" (", 1)[0] for r in records).most_common()),
        "clips_without_licence": sum(1 for r in records if not r.get("licence") or r["licence"].startswith("unknown")),
        "duplicates": {
            "dropped": len(duplicates),
            "identical_samples": sum(1 for s in duplicates if s["detail"] == "identical samples"),
            "near_duplicates": sum(1 for s in duplicates if s["detail"] != "identical samples"),
            "across_packages": sum(1 for s in duplicates
                                   if _package(s) != _package({"source": s.get("duplicate_of", "")})),
        },
        "skipped": dict(Counter(s["reason"] for s in skipped).most_common()),
    }
    if data is not None:
        train = [r for r in read_manifest(data) if r.get("split") == "train"]
        train_classes = Counter(str(r.get("class")) for r in train)
        result["foa"] = {
            "data": str(data),
            "per_split": dict(Counter(str(r.get("split")) for r in read_manifest(data))),
            "train_clips": len(train),
            "train_largest_class": train_classes.most_common(1)[0][0] if train else None,
            "train_largest_class_fraction": train_classes.most_common(1)[0][1] / len(train) if train else 0.0,
        }
    return result


def plot_balance(result: dict[str, Any], path: Path) -> None:
    """Horizontal bars: clips per class, largest first, with the 5 % line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(result["per_class"])
    counts = [result["per_class"][c] for c in classes]
    fig, ax = plt.subplots(figsize=(7, max(4.0, 0.16 * len(classes))))
    ax.barh(range(len(classes)), counts, color="tab:blue")
    ax.axvline(0.05 * result["clips"], color="tab:red", linestyle="--", label="5 % of the corpus")
    ax.set_yticks(range(len(classes)), classes, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title(f"{result['clips']} clips, {result['classes']} classes, {result['hours']:.1f} h")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("datasets/sfx_mono"), help="mono corpus folder")
    parser.add_argument("--data", type=Path, default=None, help="FOA dataset built from it (for the train split)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of clips per class")
    add_out_argument(parser, "corpus")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    result = corpus_report(args.corpus, args.data)
    print(f"{result['clips']} clips, {result['classes']} classes, {result['hours']:.2f} h of distinct mono audio; "
          f"largest class {result['largest_class_fraction']:.1%}")
    print(f"duplicates dropped: {result['duplicates']}")
    print(f"licences: {result['licences']}")
    print("per package: " + ", ".join(f"{k} {v}" for k, v in result["per_package"].items()))
    if "foa" in result:
        foa = result["foa"]
        print(f"FOA dataset: {foa['per_split']}; largest class in train: {foa['train_largest_class']} "
              f"{foa['train_largest_class_fraction']:.1%}")
    if args.plot:
        plot_balance(result, args.plot)
        print(f"wrote {args.plot}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
