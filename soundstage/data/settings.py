"""The settings a resumable output folder was made with, recorded in it and compared on every resume.

A folder that a long job fills step by step (a response bank, a spatialised dataset) stores the settings that change
its content in a JSON file before the first result; a later run with other settings is refused with the old and the
new values, instead of mixing results or silently doing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundstage.common.errors import SoundstageError


class SettingsError(SoundstageError, ValueError):
    """An output folder made with other settings than the ones asked for now."""


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON through a temporary file and a rename: a kill leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=indent))
    tmp.replace(path)


def settings_changes(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """``"name X (now Y)"`` for every setting whose value differs between the two (a missing one counts as None)."""
    names = list(stored) + [name for name in requested if name not in stored]
    return [f"{name} {stored.get(name)} (now {requested.get(name)})" for name in names
            if stored.get(name) != requested.get(name)]


def check_settings(
    folder: Path, stored: Mapping[str, Any], requested: Mapping[str, Any], what: str,
    error: type[SettingsError] = SettingsError,
) -> None:
    """Refuse ``requested`` settings that differ from those ``folder`` (holding ``what``) was made with.

    Raises:
        SettingsError (or the given subclass): naming each differing setting with its old and new value, and what
        to do.
    """
    changes = settings_changes(stored, requested)
    if changes:
        raise error(
            f"{folder} holds {what} made with {', '.join(changes)}; run again with the same settings to resume, "
            "or write to another folder (or delete this one) to start over"
        )


def record_settings(
    path: Path, requested: Mapping[str, Any], what: str, error: type[SettingsError] = SettingsError
) -> None:
    """Compare ``requested`` with the settings stored at ``path`` (:func:`check_settings`), or store them there."""
    if path.exists():
        check_settings(path.parent, json.loads(path.read_text()), requested, what, error)
    else:
        write_json_atomic(path, dict(requested), indent=2)
