"""The error of a generation request that cannot be served (a bad value, prompt, trajectory or model pairing)."""

from __future__ import annotations

from soundstage.common.errors import SoundstageError


class GenerationError(SoundstageError, ValueError):
    """A request or model pairing the generator refuses; the message names the value and the accepted range."""
