"""Moving from the public ayutaz/SongBloom fork: load and convert its ``train_japanese.py`` checkpoints."""

from songbloom.migration.fork_file import ForkCheckpoint, looks_like_fork_checkpoint, read_fork_checkpoint
from songbloom.migration.key_mapping import FORK_DEFAULT_LORA_ALPHA, MappingReport, map_fork_state_dict

__all__ = [
    "FORK_DEFAULT_LORA_ALPHA",
    "ForkCheckpoint",
    "MappingReport",
    "looks_like_fork_checkpoint",
    "map_fork_state_dict",
    "read_fork_checkpoint",
]
