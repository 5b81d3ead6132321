"""Save and load components as folders: ``config.json`` + ``model.safetensors``.

Every trainable component is a dataclass config plus an ``nn.Module`` that mixes in :class:`PretrainedMixin`.
The folder layout follows diffusers; loading is strict (a mismatch names the missing and unexpected keys) and
refuses folders written for another component or format version. No pickle is ever read.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, safe_open, save_file
from typing_extensions import Self

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "pretrained"

C = TypeVar("C")
M = TypeVar("M", bound="PretrainedMixin")


class FormatError(ValueError):
    """A model folder that is missing, of another component, of another format version, or with mismatched keys."""


def config_to_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_class: type[C], values: dict[str, Any]) -> C:
    """Build a dataclass config from JSON values; unknown keys are an error (a typo must not pass silently)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise FormatError(f"{config_class.__name__} has no fields {unknown}; valid fields: {sorted(names)}")
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for key, value in values.items():
        origin = typing.get_origin(hints.get(key))
        kwargs[key] = tuple(value) if origin is tuple and isinstance(value, list) else value
    return config_class(**kwargs)


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


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` whose only constructor argument is its config.

    Subclasses set ``config_class``, ``format_name`` (e.g. ``"soundstage.codec"``), ``format_version`` and
    ``pretrained_subfolder`` (the folder name inside a generation model, e.g. ``"codec"``).
    """

    config_class: ClassVar[type]
    format_name: ClassVar[str]
    format_version: ClassVar[int] = 1
    pretrained_subfolder: ClassVar[str]
    init_ignored_fields: ClassVar[tuple[str, ...]] = ()  # config fields init_from_pretrained may take over
    init_overridable_fields: ClassVar[tuple[str, ...]] = ()  # may differ there too; this module's value is kept
    # field -> state-dict prefix of the modules its non-default value adds, built to start as no-ops: a folder saved
    # with the field off can be grown into a module with it on (the new modules keep their initial weights)
    init_growable_fields: ClassVar[dict[str, str]] = {}
    config: Any

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        header = {"_format": self.format_name, "_format_version": self.format_version}
        config = config_to_dict(self.config)
        (path / CONFIG_NAME).write_text(json.dumps({**header, **config}, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        metadata = {"format": self.format_name, "format_version": str(self.format_version), "config": json.dumps(config)}
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
        return config_from_dict(cls.config_class, values)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Self:
        """Load a component folder (or a bundled preset name such as ``"small"``) strictly, in eval mode."""
        config = cls.read_config(path)
        folder = resolve_pretrained(path, cls.pretrained_subfolder)
        weights = folder / WEIGHTS_NAME
        if not weights.exists():
            raise FormatError(f"{folder}: {WEIGHTS_NAME} is missing")
        with safe_open(str(weights), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != cls.format_name:
            raise FormatError(f"{weights}: weights of '{meta.get('format')}', expected '{cls.format_name}'")
        model = cls(config)  # type: ignore[call-arg]
        load_state_strict(model, load_file(str(weights), device=str(device)), source=str(weights))  # type: ignore[arg-type]
        return model.to(device).eval()  # type: ignore[attr-defined,return-value]


    def init_from_pretrained(self, path: str | Path) -> None:
        """Copy the weights of a saved folder of the same architecture into this module (to fine-tune it).

        Config fields that describe the architecture must agree; those named in ``init_ignored_fields`` (values that
        training measures, like a codec's latent scale) are taken from the folder, and those in
        ``init_overridable_fields`` (settings that leave the weights' shapes alone, like the codec's phase
        parametrisation) keep this module's value; so do ``init_growable_fields`` that are off in the folder, whose
        added modules keep their initial weights.
        """
        source = type(self).from_pretrained(path)
        ours, theirs = config_to_dict(self.config), config_to_dict(source.config)
        grown = {k: prefix for k, prefix in self.init_growable_fields.items() if ours[k] != theirs[k] and not theirs[k]}
        ignored = self.init_ignored_fields + self.init_overridable_fields + tuple(grown)
        differ = sorted(k for k in ours if k not in ignored and ours[k] != theirs[k])
        if differ:
            raise FormatError(
                f"{path} was built with a different config ({', '.join(f'{k}: {theirs[k]!r} vs {ours[k]!r}' for k in differ)}); "
                "fine-tune it with the preset it was trained with"
            )
        kept = self.init_overridable_fields + tuple(grown)
        self.config = dataclasses.replace(source.config, **{k: getattr(self.config, k) for k in kept})
        state = source.state_dict()  # type: ignore[attr-defined]
        state.update({k: v for k, v in self.state_dict().items()  # type: ignore[attr-defined]
                      if any(k.startswith(prefix) for prefix in grown.values())})
        self.load_state_dict(state)  # type: ignore[attr-defined]

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
