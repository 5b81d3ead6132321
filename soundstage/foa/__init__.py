"""Ambisonics maths on AmbiX (ACN W, Y, Z, X; SN3D) audio, in torch with numpy-friendly entry points.

Angles are degrees: azimuth 0 = front (+x), +90 = left (+y); elevation +90 = up. See docs/conventions.md section 1.
"""

from .decode import decode_binaural, decode_stereo
from .encoding import (
    XYZ,
    ambix_to_fuma,
    angle_between_deg,
    direction_vector,
    encode_mono,
    foa_gains,
    fuma_to_ambix,
    great_circle_deg,
    vector_to_angles,
    wrap_degrees,
)
from .intensity import (
    broadband_doa,
    diffuseness,
    direction_energy_map,
    foa_stft,
    framewise_diffuseness,
    framewise_doa,
    intensity_from_stft,
    intensity_vectors,
)
from .rotation import rotate_foa, rotation_matrix
from .validation import FOAInputError, check_foa

__all__ = [
    "XYZ",
    "FOAInputError",
    "ambix_to_fuma",
    "angle_between_deg",
    "broadband_doa",
    "check_foa",
    "decode_binaural",
    "decode_stereo",
    "diffuseness",
    "direction_energy_map",
    "direction_vector",
    "encode_mono",
    "foa_gains",
    "foa_stft",
    "framewise_diffuseness",
    "framewise_doa",
    "fuma_to_ambix",
    "great_circle_deg",
    "intensity_from_stft",
    "intensity_vectors",
    "rotate_foa",
    "rotation_matrix",
    "vector_to_angles",
    "wrap_degrees",
]
