"""Soundstage: text to first-order ambisonics (FOA) spatial audio.

Conventions (docs/conventions.md): AmbiX = ACN order (W, Y, Z, X), SN3D; angles in degrees, azimuth +90 = left.
"""

__version__ = "0.1.0"
