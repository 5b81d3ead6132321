"""Save and load components as folders: ``config.json`` + ``model.safetensors``.

Every component is a dataclass config plus an ``nn.Module`` that mixes in :class:`PretrainedMixin`. The folder
layout follows diffusers; loading is strict (a mismatch names the missing and unexpected keys, an unknown config key
names its path) and refuses folders written for another component or format version. No pickle is ever read.
Configs may nest: a field typed as another dataclass (or ``Optional`` of one) comes back as that dataclass, and
JSON lists come back as the tuples the field's type names. A config-only component (``has_weights = False``, e.g.
a conditioner around a frozen external encoder referenced by name) is a folder with ``config.json`` alone.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from typing_extensions import Self

from soundstage.common.errors import SoundstageError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "pretrained"

C = TypeVar("C")


class FormatError(SoundstageError, ValueError):
    """A model folder that is missing, of another component, of another format version, or with mismatched keys."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A (possibly nested) dataclass config as JSON values: dataclasses become dicts, tuples lists."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_class: type[C], values: dict[str, Any], path: str = "") -> C:
    """Build a dataclass config from JSON values, nested configs included.

    Unknown keys, at any depth, are an error naming their path (a typo must not pass silently); ``path`` is the
    dotted location of ``values`` inside the outermost config, for those messages.
    """
    where = f" (at '{path}')" if path else ""
    if not isinstance(values, dict):
        raise FormatError(f"{config_class.__name__}{where} must be a JSON object, got {values!r}")
    names = {f.name for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        named = [f"{path}.{k}" if path else k for k in unknown]
        raise FormatError(f"{config_class.__name__}{where} has no fields {named}; valid fields: {sorted(names)}")
    hints = typing.get_type_hints(config_class)
    kwargs = {key: _from_json(hints[key], value, f"{path}.{key}" if path else key) for key, value in values.items()}
    return config_class(**kwargs)


def _from_json(hint: Any, value: Any, path: str) -> Any:
    """One JSON value as the type ``hint`` names: a dataclass from a dict, a tuple from a list, recursively."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return config_from_dict(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nested = [a for a in options if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(nested) == 1:
            return config_from_dict(nested[0], value, path)
        return _from_json(options[0], value, path) if len(options) == 1 else value
    if origin is tuple and isinstance(value, list):
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            item_types = [Any] * len(value)
        return tuple(_from_json(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))
    if origin is list and isinstance(value, list) and args:
        return [_from_json(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _from_json(args[1], v, f"{path}.{k}") for k, v in value.items()}
    return value


def resolve_pretrained(path_or_name: str | Path, subfolder: str) -> Path:
    """Map a bundled preset name (``"small"``) to ``soundstage/pretrained/small/<subfolder>``; pass paths through.

    A generation-model folder (holding ``codec/``, ``elsa/``, ``dit/``) is accepted for any component too.
    """
    path = Path(path_or_name)
    if not path.exists() and (PRETRAINED_ROOT / str(path_or_name)).is_dir():
        path = PRETRAINED_ROOT / str(path_or_name)
    if not (path / CONFIG_NAME).exists() and (path / subfolder / CONFIG_NAME).exists():
        path = path / subfolder
    return path


def raise_if_configs_differ(ours: Any, theirs: Any, path: str | Path, ignored: tuple[str, ...] = ()) -> None:
    """Raise FormatError naming each top-level field (outside ``ignored``) where ``theirs``, the config of the
    folder at ``path``, differs from ``ours``."""
    a, b = config_to_dict(ours), config_to_dict(theirs)
    differ = [f"{k}: {b[k]!r} vs {a[k]!r}" for k in sorted(a) if k not in ignored and a[k] != b[k]]
    if differ:
        raise FormatError(
            f"{path} was built with a different config ({', '.join(differ)}); fine-tune it with the preset it was "
            "trained with"
        )


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` whose only constructor argument is its config.

    Subclasses set ``config_class``, ``format_name`` (e.g. ``"soundstage.codec"``), ``format_version`` and
    ``pretrained_subfolder`` (the folder name inside a generation model, e.g. ``"codec"``); a component whose
    parameters are all rebuilt from its config (or from files it names) sets ``has_weights = False``.
    """

    config_class: ClassVar[type]
    format_name: ClassVar[str]
    format_version: ClassVar[int] = 1
    pretrained_subfolder: ClassVar[str]
    has_weights: ClassVar[bool] = True
    config: Any

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        header = {"_format": self.format_name, "_format_version": self.format_version}
        config = config_to_dict(self.config)
        (path / CONFIG_NAME).write_text(json.dumps({**header, **config}, indent=2) + "\n")
        if self.has_weights:
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
            metadata = {"format": self.format_name, "format_version": str(self.format_version),
                        "config": json.dumps(config)}
            save_file(state, str(path / WEIGHTS_NAME), metadata=metadata)
        return path

    @classmethod
    def read_config(cls, path: str | Path) -> Any:
        path = resolve_pretrained(path, cls.pretrained_subfolder)
        config_file = path / CONFIG_NAME
        if not config_file.exists():
            raise FormatError(
                f"{path}: no {CONFIG_NAME} found. Expected a {cls.format_name} folder written by save_pretrained "
                f"(config.json + model.safetensors), a model folder with a '{cls.pretrained_subfolder}/' inside, "
                f"or a bundled preset name ({', '.join(sorted(p.name for p in PRETRAINED_ROOT.glob('*')) or 'none')})."
            )
        try:
            values = json.loads(config_file.read_text())
        except json.JSONDecodeError as exc:
            raise FormatError(f"{config_file}: not valid JSON ({exc})") from exc
        fmt = values.pop("_format", None)
        version = values.pop("_format_version", None)
        if fmt != cls.format_name:
            raise FormatError(f"{path} holds a '{fmt}' model, not a '{cls.format_name}' model")
        if version != cls.format_version:
            raise FormatError(
                f"{path} is {cls.format_name} format version {version}; this soundstage reads version "
                f"{cls.format_version}"
            )
        return cls.config_from_values(values)

    @classmethod
    def config_from_values(cls, values: dict[str, Any]) -> Any:
        """The config from the values of ``config.json`` (format header removed), strictly (:func:`config_from_dict`).
        A component that must read folders written with fields it has since retired overrides this."""
        return config_from_dict(cls.config_class, values)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Self:
        """Load a component folder (or a bundled preset name such as ``"small"``) strictly, in eval mode."""
        config = cls.read_config(path)
        weights = resolve_pretrained(path, cls.pretrained_subfolder) / WEIGHTS_NAME
        if not cls.has_weights and weights.exists():
            raise FormatError(f"{weights}: a {cls.format_name} model has no weights of its own; this folder is not one")
        state = read_weights(weights, cls.format_name, device) if cls.has_weights else None
        model = cls(config)  # type: ignore[call-arg]
        if state is not None:
            load_state_strict(model, state, source=str(weights))  # type: ignore[arg-type]
        return model.to(device).eval()  # type: ignore[attr-defined,return-value]

    def init_from_pretrained(self, path: str | Path) -> None:
        """Copy the weights of a saved folder into this module, to fine-tune it; the folder's config is taken too,
        once :meth:`check_init_config` has accepted it."""
        source = type(self).from_pretrained(path)
        self.check_init_config(source.config, path)
        self.config = source.config
        self.load_state_dict(source.state_dict())  # type: ignore[attr-defined]

    def check_init_config(self, other: Any, path: str | Path) -> None:
        """Raise FormatError unless a folder built with config ``other`` may initialise this module: the same config
        (a component whose configs hold values measured after training overrides this)."""
        raise_if_configs_differ(self.config, other, path)


def read_weights(weights: Path, format_name: str, device: str | torch.device) -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors`` whose metadata says it holds a ``format_name`` model.

    Raises FormatError naming the file when it is missing, truncated or corrupt, or holds another component.
    """
    if not weights.exists():
        raise FormatError(f"{weights.parent}: {WEIGHTS_NAME} is missing")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != format_name:
            raise FormatError(f"{weights}: weights of '{meta.get('format')}', expected '{format_name}'")
        return load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise FormatError(f"{weights}: not a complete safetensors file ({exc}); save or download the model "
                          "again") from exc


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names the missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or shapes:
        raise FormatError(
            f"{source} does not match {type(module).__name__}: missing keys {missing[:10]}, unexpected keys "
            f"{unexpected[:10]}, shape mismatches {shapes[:10]}"
        )
    module.load_state_dict(state, strict=True)
