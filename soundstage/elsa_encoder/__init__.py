"""ELSA: spatially-aware audio-text embeddings (first-order ambisonics <-> spatial captions), its heads and loss.

```python
from soundstage.elsa_encoder import ELSA
elsa = ELSA.from_pretrained("small")
elsa.embed_audio(foa, 24000)             # (B, 512) unit vectors; foa (4, T) or (B, 4, T) AmbiX
elsa.embed_text(["A dog barks to the left"])   # (B, 512) unit vectors
elsa.predict_spatial(foa, 24000)         # azimuth_deg, elevation_deg, distance_m, floor_area_m2, t30_s: (B,)
```
Evaluation lives in :mod:`soundstage.elsa_encoder.evaluate` (imported on demand: it pulls in plotting).
"""

from .config import ELSA_PRESETS, ELSAConfig, elsa_preset
from .loss import contrastive_loss, elsa_loss, spatial_losses
from .model import ELSA, ELSAInputError

__all__ = [
    "ELSA",
    "ELSA_PRESETS",
    "ELSAConfig",
    "ELSAInputError",
    "contrastive_loss",
    "elsa_loss",
    "elsa_preset",
    "spatial_losses",
]
