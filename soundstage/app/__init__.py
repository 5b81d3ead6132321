"""The browser app for sound designers, ``soundstage app`` (design: docs/app.md).

```python
from soundstage.app import serve
serve("small", host="127.0.0.1", port=7860)   # blocks until Ctrl-C or SIGTERM; API endpoint "/generate"
```
The handlers (:mod:`soundstage.app.handlers`) and pictures (:mod:`soundstage.app.render`) import no gradio, so they
load fast and are tested as plain functions; :func:`build_app` and :func:`serve` (:mod:`soundstage.app.ui`) import it
when first used.
"""

from typing import Any

from .handlers import AppError, AppLimits, Clip, Workspace, generate_clips, rotate_clip

__all__ = ["AppError", "AppLimits", "Clip", "Workspace", "build_app", "generate_clips", "rotate_clip", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("build_app", "serve"):
        from . import ui

        return getattr(ui, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
