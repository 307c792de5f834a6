"""Deprecated alias: the demo-audio callback is in songbloom.training.demo_callback, its settings and items in
demo_settings / demo_items, the WAV and spectrogram writers in audio_files, the progress bar and W&B closing in
logging_callbacks, and callbacks are built from conf/callbacks by songbloom.training.builders."""

from songbloom.building.lora import base_weights, lora_layers, snapshot_full_tensors  # noqa: F401
from songbloom.training.audio_files import mel_image, write_song  # noqa: E402, F401
from songbloom.training.demo_callback import (  # noqa: E402, F401
    DemoAudioCallback,
    DemoTimeUp,
    preemption_pending,
)
from songbloom.training.demo_settings import BUILTIN_LYRICS, DemoAudioSettings, DemoItem  # noqa: E402, F401
from songbloom.training.logging_callbacks import FinishWandbRun, progress_bar  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.training.demo_callback")
