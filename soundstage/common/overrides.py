"""``NAME=VALUE`` command-line overrides of a dataclass config (``--loss``, ``--set``)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

from soundstage.common.errors import UsageError

C = TypeVar("C")
SCALARS = (float, int, bool, str)


def settable_names(base: Any, prefix: str = "") -> list[str]:
    """The names ``apply_overrides`` accepts: scalar fields, and ``outer.inner`` for fields of nested configs."""
    names = []
    for f in fields(base):
        value = getattr(base, f.name)
        if is_dataclass(value):
            names += settable_names(value, f"{prefix}{f.name}.")
        elif type(value) in SCALARS:
            names.append(prefix + f.name)
    return names


def apply_overrides(base: C, items: list[str], what: str = "option") -> C:
    """``base`` with the fields named in ``["broadband_weight=5", "conditioners.text_dropout=0.2"]`` replaced.

    Only scalar fields (floats, ints, booleans, strings) can be set, each parsed as the type of its current value; a
    dotted name reaches into a nested dataclass config. An unknown name or a bad value raises :class:`UsageError`
    naming what can be set. The configs' own validation (``__post_init__``) runs on the result; a combination it
    refuses is a UsageError with its reason.
    """
    settable = settable_names(base)
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or name not in settable:
            raise UsageError(f"cannot set {what} {item!r}: expected NAME=VALUE with NAME one of {', '.join(settable)}")
        changes[name] = _parse(text, type(_get(base, name)), name, what)
    try:
        return _replace(base, changes)
    except ValueError as exc:
        raise UsageError(f"{what}s {', '.join(items)}: {exc}") from exc


def _get(base: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        base = getattr(base, part)
    return base


def _parse(text: str, kind: type, name: str, what: str) -> float | int | bool | str:
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return kind(text)
    except ValueError:
        article = "an" if kind is int else "a"
        raise UsageError(f"{what} {name} needs {article} {kind.__name__} value, got {text!r}") from None


def _replace(base: C, changes: dict[str, Any]) -> C:
    """``dataclasses.replace`` with dotted names, rebuilding each nested config that changes (so it validates)."""
    own = {k: v for k, v in changes.items() if "." not in k}
    for outer in {k.split(".", 1)[0] for k in changes if "." in k}:
        inner = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith(outer + ".")}
        own[outer] = _replace(getattr(base, outer), inner)
    return replace(base, **own)  # type: ignore[type-var]
