"""The one error type a user can cause, and how the command line reports it.

Every error raised because of the user's input (a bad file, option, folder or model) derives from
:class:`SoundstageError`; ``soundstage`` prints its message as one line and exits with status 2. Anything else that
escapes a command is a bug in Soundstage and is reported as such (exit 1). Subclasses keep the ``ValueError`` or
``RuntimeError`` base they had before, so callers that catch those still work.
"""

from __future__ import annotations


class SoundstageError(Exception):
    """Base of every error a user can cause; its message says what is wrong and, where it helps, what to do."""


class UsageError(SoundstageError, ValueError):
    """Command-line values that are refused: out of range, not finite, or not usable with this input."""
