"""Let torch-first functions take and return numpy arrays too, and inference methods return tensors without grad."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

F = TypeVar("F", bound=Callable[..., Any])


def as_tensor(x: Any, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """A float tensor from a tensor, array or number (tensors keep their device unless one is given)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype if x.is_floating_point() or not x.is_complex() else x.dtype, device=device or x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def numpy_in_numpy_out(fn: F) -> F:
    """If the first argument is a numpy array, convert array arguments to tensors and the results back to numpy."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not args or not isinstance(args[0], np.ndarray):
            return fn(*args, **kwargs)
        args = tuple(torch.from_numpy(np.asarray(a, dtype=np.float32)) if isinstance(a, np.ndarray) else a for a in args)
        kwargs = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) if isinstance(v, np.ndarray) else v
                  for k, v in kwargs.items()}
        return _to_numpy(fn(*args, **kwargs))

    return wrapper  # type: ignore[return-value]


def _to_numpy(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, tuple):
        return tuple(_to_numpy(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    return out


def grad_only_for_input(method: F) -> F:
    """Run ``method(self, x, ...)`` with autograd only when ``x`` is a tensor that requires grad.

    Inference calls (audio, arrays, texts) then return tensors without a graph, as users expect and without its
    memory; a caller that differentiates through the call with respect to its input (e.g. optimising a latent)
    still can. Training differentiates the module's own passes (``forward`` and the like), not these methods.
    """

    @functools.wraps(method)
    def wrapper(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        wanted = isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled()
        with torch.set_grad_enabled(wanted):
            return method(self, x, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
