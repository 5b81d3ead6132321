"""Generation: the pipeline (:class:`SoundstagePipeline`), batch generation from JSONL, trajectories and the
direction lock.

```python
from soundstage.sample import SoundstagePipeline
foa, sample_rate = SoundstagePipeline.from_pretrained("small")("a dog barks", azimuth_deg=90.0, seed=0)
```
"""

from .batch import BatchReport, generate_batch
from .direction import Keyframe, lock_direction, parse_trajectory, trajectory_frame_errors, trajectory_vectors
from .errors import GenerationError
from .pipeline import GenerationDefaults, GenerationResult, SoundstagePipeline
from .request import GenerationRequest

__all__ = [
    "BatchReport",
    "GenerationDefaults",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Keyframe",
    "SoundstagePipeline",
    "generate_batch",
    "lock_direction",
    "parse_trajectory",
    "trajectory_frame_errors",
    "trajectory_vectors",
]
