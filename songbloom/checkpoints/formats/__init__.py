"""The checkpoint formats this version reads, one module each; this file is the list that registers them.

To add a format: write one module here with a ``FORMAT = CheckpointFormat(name, description, detect, load)``
and add one line to :data:`BUILTIN_FORMATS` (see docs/architecture.md). Detection tries formats in this
order and the first match wins; ``detect`` must be cheap (no tensor reads) and must not raise.
"""

from __future__ import annotations

from songbloom.checkpoints.formats import fork, merged, peft_adapter, release, training
from songbloom.checkpoints.registry import CheckpointFormat, register_checkpoint_format

BUILTIN_FORMATS: tuple[CheckpointFormat, ...] = (
    release.RELEASE_DIR,
    release.RELEASE_PT,
    fork.FORMAT,
    training.FORMAT,
    merged.FORMAT,
    peft_adapter.FORMAT,
)

for _fmt in BUILTIN_FORMATS:
    register_checkpoint_format(_fmt, replace=True)
