"""Recovering the base model's own sketch tokens: a tokenizer from audio to the ids a released model was trained on.

Step one is a self-distillation corpus (:mod:`~songbloom.sketch.recovery.corpus`): songs the base model generates,
with the sketch ids it sampled and MuQ features of the decoded audio, aligned frame by frame. Step two fits a linear
probe from MuQ features to those ids (:mod:`~songbloom.sketch.recovery.fit`) and writes it as a codebook artifact
with a ``recovery`` block (:mod:`~songbloom.sketch.recovery.probe_artifact`). Step three reports, on the user's own
songs, how the base model reads recovered ids against a fresh k-means codebook's
(:mod:`~songbloom.sketch.recovery.report`). :mod:`~songbloom.sketch.recovery.recover` runs the three
(``python -m songbloom.sketch recover``).
"""

from songbloom.sketch.recovery.corpus import CorpusReport, corpus_task, generate_corpus
from songbloom.sketch.recovery.corpus_args import add_corpus_arguments, corpus_settings_from_args
from songbloom.sketch.recovery.corpus_files import (
    CorpusFileError,
    CorpusSong,
    CorpusStatus,
    TaskStatus,
    corpus_status,
    iter_corpus,
    load_corpus,
)
from songbloom.sketch.recovery.corpus_plan import (
    CorpusItem,
    CorpusPlan,
    CorpusPlanMismatch,
    CorpusSettings,
    read_plan,
)
from songbloom.sketch.recovery.recover import (
    CorpusIncompleteError,
    Recovery,
    RecoveryConfig,
    RecoveryResult,
    ReportSettings,
    recover,
)

__all__ = [
    "CorpusFileError",
    "CorpusIncompleteError",
    "CorpusItem",
    "CorpusPlan",
    "CorpusPlanMismatch",
    "CorpusReport",
    "CorpusSettings",
    "CorpusSong",
    "CorpusStatus",
    "Recovery",
    "RecoveryConfig",
    "RecoveryResult",
    "ReportSettings",
    "TaskStatus",
    "add_corpus_arguments",
    "corpus_settings_from_args",
    "corpus_status",
    "corpus_task",
    "generate_corpus",
    "iter_corpus",
    "load_corpus",
    "read_plan",
    "recover",
]
