"""Batch generation from a JSONL file of requests: ``DIR/<id>.wav`` + ``DIR/manifest.jsonl``.

Each line is one JSON object with the keys of :data:`REQUEST_KEYS` (all but ``prompt`` optional) and ``id`` (default:
the line number); any other key is the user's and is copied to the manifest untouched. Every row is checked before
any is generated; a bad row (bad JSON, a bad value, a duplicate or unusable id) is reported with its line number
and reason while the good rows still run. A re-run skips ids whose manifest line and file both exist, and refuses a
folder holding clips of another model (so that one folder never mixes two models' clips). Files are
written atomically (32-bit float 4-channel AmbiX WAV at the codec's rate) and each manifest line is appended after
its file, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from soundstage.common.audio import save_audio
from soundstage.common.errors import SoundstageError
from soundstage.data.manifest import write_jsonl

from .errors import GenerationError
from .pipeline import SoundstagePipeline
from .request import GenerationRequest

REQUEST_KEYS = ("prompt", "mode", "azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s", "seconds",
                "seed", "steps", "cfg_scale", "negative_prompt", "trajectory")
MANIFEST_NAME = "manifest.jsonl"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # a safe file name


@dataclass
class BatchFailure:
    line: int  # 1-based line of the prompts file
    id: str | None
    reason: str


@dataclass
class BatchReport:
    """Counts of a batch run; ``failed`` lists each bad row (the command exits non-zero when there is one)."""

    written: int = 0
    skipped: int = 0
    failed: list[BatchFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _row_id(row: dict[str, Any], line: int) -> str:
    value = row.get("id", line)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise GenerationError(f"id must be a text or a number, got {value!r}")
    text = str(value)
    if not ID_PATTERN.fullmatch(text):
        raise GenerationError(f"id {text!r} is not usable as a file name: use letters, digits, '.', '_' or '-' "
                              "(first a letter or digit), at most 200 characters")
    return text


def _read_done(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Manifest records whose file exists, by id; the manifest is rewritten without the others (a killed run's
    partial line, or a record whose file was deleted)."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.exists():
        return {}
    done: dict[str, dict[str, Any]] = {}
    for text in manifest.read_text().splitlines():
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record and (out_dir / str(record.get("path", ""))).is_file():
            done[str(record["id"])] = record
    write_jsonl(manifest, done.values())
    return done


def _requests(pipe: SoundstagePipeline, lines: list[str], done: dict[str, dict[str, Any]], report: BatchReport,
              **options: Any) -> list[tuple[int, str, dict[str, Any], GenerationRequest]]:
    """Check every row; failures and skips go to ``report``; returns ``(line, id, row, request)`` to run."""
    seen: set[str] = set()
    todo = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        row_id = None
        try:
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise GenerationError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise GenerationError(f"expected a JSON object, got {type(row).__name__}")
            row_id = _row_id(row, number)
            if row_id in seen:
                raise GenerationError(f"duplicate id {row_id!r}")
            seen.add(row_id)
            if row_id in done:
                report.skipped += 1
                continue
            if "prompt" not in row:
                raise GenerationError("no 'prompt' key")
            values = {k: row[k] for k in REQUEST_KEYS if k in row and k != "prompt"}
            todo.append((number, row_id, row, pipe.make_request(row["prompt"], **values, **options)))
        except SoundstageError as exc:
            report.failed.append(BatchFailure(number, row_id, str(exc)))
    return todo


def generate_batch(pipe: SoundstagePipeline, prompts_jsonl: str | Path, out_dir: str | Path,
                   direction_lock: bool = True, sampler: str = "euler", progress: bool = True) -> BatchReport:
    """Generate every row of ``prompts_jsonl`` into ``out_dir`` (see the module docstring).

    ``direction_lock`` and ``sampler`` apply to every row. Raises GenerationError when the prompts file cannot be
    read or ``out_dir`` is not a folder; a row's problem never raises, it is reported.
    """
    prompts, out_dir = Path(prompts_jsonl), Path(out_dir)
    if not prompts.is_file():
        raise GenerationError(f"{prompts}: no such prompts file")
    if out_dir.exists() and not out_dir.is_dir():
        raise GenerationError(f"{out_dir}: exists and is not a folder")
    try:
        lines = prompts.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GenerationError(f"{prompts}: not UTF-8 text ({exc.reason})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _read_done(out_dir)
    foreign = [r for r in done.values() if r.get("model_hash") != pipe.model_hash]
    if foreign:
        others = sorted({str(r.get("model_hash")) for r in foreign})
        raise GenerationError(f"{out_dir}: holds {len(foreign)} clips made by another model ({', '.join(others)}; "
                              f"this one is {pipe.model_hash}); a re-run only completes a folder of the same model: "
                              "choose another output folder or remove those clips")
    report = BatchReport()
    todo = _requests(pipe, lines, done, report, direction_lock=direction_lock, sampler=sampler)
    for number, row_id, row, request in tqdm(todo, desc="generate batch", unit="clip", disable=not progress):
        try:
            result = pipe.generate(request, progress=False)
        except SoundstageError as exc:
            report.failed.append(BatchFailure(number, row_id, str(exc)))
            continue
        path = out_dir / f"{row_id}.wav"
        save_audio(path, result.foa[0].numpy(), result.sample_rate, subtype="FLOAT")
        record = {"id": row_id, **{k: v for k, v in row.items() if k not in REQUEST_KEYS and k != "id"},
                  **request.to_record(), "seed": result.seeds[0], "model_hash": pipe.model_hash,
                  "sample_rate": result.sample_rate, "path": path.name}
        with (out_dir / MANIFEST_NAME).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        report.written += 1
    return report
