"""The training side of recovered sketch codebooks: read the run's codebook for the building layer.

The building layer (:mod:`songbloom.building.sketch_tables`) decides how a LoRA run treats the sketch tables but
reads no files; this reads the codebook's recovery block and hands it down as plain values.
"""

from __future__ import annotations

from songbloom.building.model import reads_codebook_recovery
from songbloom.building.sketch_tables import RecoveredCodebook
from songbloom.config.run import RunConfig
from songbloom.sketch.artifact import recovered_codebook_for_run


def run_recovered_codebook(rc: RunConfig) -> RecoveredCodebook | None:
    """What the run's sketch codebook recorded about the base tables it was recovered from, when that can change
    the layout (a LoRA run with ``trainable.sketch_embedding: auto``); the building layer compares it with the
    init weights. An unreadable codebook is logged and counted as not recovered."""
    if not reads_codebook_recovery(rc):
        return None
    return recovered_codebook_for_run(str(rc.sketch.codebook_path))
