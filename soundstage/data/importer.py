"""Import your own captioned clips (``soundstage data import``) into a mono corpus folder.

The CSV needs a file column and a caption column; ``class`` and ``licence`` are optional:

- ours: ``file, caption[, class, licence]`` (``file`` relative to the audio root, or absolute);
- Clotho: ``file_name, caption_1 .. caption_5`` (the first caption is used);
- AudioCaps: ``audiocap_id, youtube_id, start_time, caption`` with no file column: the clip is looked up as
  ``<audiocap_id>.*``, ``<youtube_id>.*``, ``Y<youtube_id>.*`` or ``<youtube_id>_<start_time>.*`` under the root.

Every bad row (no file, unreadable/corrupt/empty/silent audio, empty caption, ...) is skipped, reported with its CSV
line number and written to ``skipped.jsonl``. A CSV that is missing, not UTF-8 or without the required columns is
an error, and so is one in which no row can be used (the error gives the first reasons; nothing is written).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from soundstage.common.errors import SoundstageError
from soundstage.data.corpus import ClipSpec, CorpusItem, CorpusReport, Skip, write_corpus

logger = logging.getLogger(__name__)

FILE_COLUMNS = ("file", "file_name", "filename", "fname", "path")
ID_COLUMNS = ("audiocap_id", "youtube_id")
CAPTION_COLUMNS = ("caption", "caption_1")
CLASS_COLUMNS = ("class", "label")
LICENCE_COLUMNS = ("licence", "license")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_CLASS = "unknown"
DEFAULT_LICENCE = "unspecified"
REQUIRED_HELP = (
    "a file column (file, or file_name, or youtube_id/audiocap_id) and a caption column (caption or caption_1)"
)


class CsvFormatError(SoundstageError, ValueError):
    """The CSV cannot be imported at all (missing file or required columns); the message says what to fix."""


@dataclass(frozen=True)
class Columns:
    """Which CSV columns (normalised to lower case) hold what."""

    file: str | None
    ids: tuple[str, ...]
    caption: str
    label: str | None
    licence: str | None


def _first(candidates: Sequence[str], names: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in names), None)


def resolve_columns(fieldnames: Sequence[str] | None, csv_path: Path) -> Columns:
    """Map the CSV header to our roles; raises CsvFormatError naming the columns found and those required."""
    names = [n.strip().lower() for n in fieldnames or []]
    file = _first(FILE_COLUMNS, names)
    ids = tuple(c for c in ID_COLUMNS if c in names)
    caption = _first(CAPTION_COLUMNS, names)
    missing = ([] if file or ids else ["file"]) + ([] if caption else ["caption"])
    if missing:
        raise CsvFormatError(
            f"{csv_path}: missing required column(s) {missing}; found columns {names}; "
            f"required: {REQUIRED_HELP}; optional: class, licence"
        )
    return Columns(file, ids, caption, _first(CLASS_COLUMNS, names), _first(LICENCE_COLUMNS, names))


def _candidates(row: dict[str, str], cols: Columns, audio_root: Path) -> list[Path]:
    """Paths the row's audio may have, in order of preference."""
    if cols.file:
        name = row.get(cols.file, "").strip()
        if not name:
            return []
        path = Path(name)
        return [path if path.is_absolute() else audio_root / path]
    stems = [row.get(c, "").strip() for c in cols.ids]
    youtube_id = row.get("youtube_id", "").strip()
    if youtube_id:
        stems += [f"Y{youtube_id}"]
        start = row.get("start_time", "").strip()
        if start:
            stems += [f"{youtube_id}_{start}", f"Y{youtube_id}_{start}"]
    return [audio_root / f"{stem}{ext}" for stem in stems if stem for ext in AUDIO_EXTENSIONS]


def _output_path(audio: Path, audio_root: Path) -> str:
    """``audio/<path under the root, sanitised>.flac``; files outside the root keep only their name."""
    try:
        rel = PurePath(audio.resolve().relative_to(audio_root.resolve()))
    except ValueError:
        rel = PurePath(audio.name)
    parts = [re.sub(r"[^A-Za-z0-9_.-]+", "_", p).strip("._") or "clip" for p in rel.with_suffix("").parts]
    return "audio/" + "/".join(parts) + ".flac"


def _row_item(row: dict[str, str], line: int, cols: Columns, csv_path: Path, audio_root: Path) -> CorpusItem:
    where = f"{csv_path.name}:{line}"
    candidates = _candidates(row, cols, audio_root)
    source = f"import:{csv_path.name}/{candidates[0].name if candidates else '(no file)'}"
    if not candidates:
        return Skip(where, source, "missing_file", "the row names no audio file")
    audio = next((p for p in candidates if p.is_file()), None)
    if audio is None:
        tried = ", ".join(str(p) for p in candidates[:4]) + (" ..." if len(candidates) > 4 else "")
        return Skip(where, source, "missing_file", f"not found: {tried}")
    caption = (row.get(cols.caption) or "").strip()
    if not caption:
        return Skip(where, source, "empty_caption", f"column '{cols.caption}' is empty")
    rel_source = audio.relative_to(audio_root).as_posix() if audio.is_relative_to(audio_root) else str(audio)
    return ClipSpec(
        audio_path=audio,
        rel_path=_output_path(audio, audio_root),
        caption=caption,
        label=(row.get(cols.label or "") or "").strip().lower() or DEFAULT_CLASS,
        licence=(row.get(cols.licence or "") or "").strip() or DEFAULT_LICENCE,
        source=f"import:{csv_path.name}/{rel_source}",
        group=csv_path.name,
        where=where,
    )


def read_rows(csv_path: Path, audio_root: Path) -> list[CorpusItem]:
    """Parse the CSV into clips to add and rows already rejected, in file order."""
    reader = csv.DictReader(io.StringIO(_csv_text(csv_path), newline=""))
    cols = resolve_columns(reader.fieldnames, csv_path)
    items: list[CorpusItem] = []
    for raw in reader:
        row = {(k or "").strip().lower(): (v if isinstance(v, str) else "") for k, v in raw.items()}
        items.append(_row_item(row, reader.line_num, cols, csv_path, audio_root))
    return items


def _csv_text(csv_path: Path) -> str:
    """The CSV's text (UTF-8, with or without a BOM); CsvFormatError naming the line of a byte that is not UTF-8."""
    if not csv_path.is_file():
        raise CsvFormatError(f"{csv_path}: no such CSV file")
    data = csv_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CsvFormatError(f"{csv_path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; save the CSV as "
                             "UTF-8") from None


def import_corpus(csv_path: Path, audio_root: Path, out_dir: Path, progress: bool = True) -> CorpusReport:
    """Build a mono corpus in ``out_dir`` from a captions CSV and the folder holding its audio.

    Writes ``manifest.jsonl`` (mono keys plus ``class``), ``audio/**.flac`` (mono, original rate) and
    ``skipped.jsonl``; re-running reuses the FLAC files already written.

    Raises:
        CsvFormatError: the CSV or the audio root does not exist, the CSV is not UTF-8 (the line is named) or lacks
            the required columns.
        CorpusError: no row gave a usable clip; nothing is written.
    """
    csv_path, audio_root = Path(csv_path), Path(audio_root)
    if not audio_root.is_dir():
        raise CsvFormatError(f"{audio_root}: the audio root is not a folder")
    items = read_rows(csv_path, audio_root)
    return write_corpus(
        items, Path(out_dir), title=f"import {csv_path.name}", group_name="csv", total=len(items), progress=progress
    )
