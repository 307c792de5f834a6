"""Deprecated alias of songbloom.checkpoints.formats.peft_adapter (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.peft_adapter import (  # noqa: E402, F401
    ADAPTER_NAME,
    PEFT_PREFIX,
    is_adapter_dir,
    load_peft_adapter,
    merge_peft_adapter,
    read_adapter_meta,
    save_peft_adapter,
)
from songbloom.checkpoints.keys import (  # noqa: E402, F401
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
)
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.models.songbloom import SongBloomModel  # noqa: E402, F401
from songbloom.utils.atomic import atomic_write, atomic_write_text  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.peft_adapter")
