"""``NAME=VALUE`` command-line overrides of a dataclass config (``--loss``, ``--set``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TypeVar

from soundstage.common.errors import UsageError

C = TypeVar("C")


def apply_overrides(base: C, items: list[str], what: str = "option") -> C:
    """``base`` with the fields named in ``["broadband_weight=5", "adversarial=true"]`` replaced.

    Only scalar fields (floats, ints, booleans, strings) can be set, each parsed as the type of its current value;
    an unknown name or a bad value raises :class:`UsageError` naming what can be set. The config's own validation
    (``__post_init__``) runs on the result; a combination it refuses is a UsageError with its reason.
    """
    kinds = {f.name: type(getattr(base, f.name)) for f in fields(base)}  # type: ignore[arg-type]
    settable = [n for n, k in kinds.items() if k in (float, int, bool, str)]
    changes: dict[str, float | int | bool | str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or name not in settable:
            raise UsageError(f"cannot set {what} {item!r}: expected NAME=VALUE with NAME one of {', '.join(settable)}")
        kind = kinds[name]
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                changes[name] = text.lower() in ("true", "1")
            else:
                changes[name] = kind(text)
        except ValueError:
            article = "an" if kind is int else "a"
            raise UsageError(f"{what} {name} needs {article} {kind.__name__} value, got {text!r}") from None
    try:
        return replace(base, **changes)  # type: ignore[type-var]
    except ValueError as exc:
        raise UsageError(f"{what}s {', '.join(items)}: {exc}") from exc
