"""The diffusion transformer over codec latents: model (:mod:`.model`) and rectified-flow objective
(:mod:`.objective`); samplers and classifier-free guidance are in :mod:`.sampling`."""

from .model import DIT_PRESETS, DiTConfig, SpatialDiT, dit_preset
from .objective import flow_matching_loss

__all__ = ["DIT_PRESETS", "DiTConfig", "SpatialDiT", "dit_preset", "flow_matching_loss"]
