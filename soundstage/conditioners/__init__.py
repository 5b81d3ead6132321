"""Conditioners: what a request says (texts, numbers, length) -> cross-attention tokens and a global vector.

```python
from soundstage.conditioners import ConditionBatch, Conditioners, ConditionersConfig
batch = ConditionBatch.from_records([{"caption": "a dog barks", "azimuth_deg": 90.0, "seconds": 5.0}])
cond = conditioners(batch)                         # Conditioning(tokens, mask, global_vector)
uncond = conditioners(batch.null_like())           # CFG's unconditional branch
```
"""

from .conditioners import DROP_KEYS, TRAINING_ONLY_FIELDS, Conditioners, ConditionersConfig
from .types import NUMBER_KEYS, ConditionBatch, ConditionError, Conditioning

__all__ = [
    "DROP_KEYS",
    "NUMBER_KEYS",
    "TRAINING_ONLY_FIELDS",
    "ConditionBatch",
    "ConditionError",
    "Conditioners",
    "ConditionersConfig",
    "Conditioning",
]
