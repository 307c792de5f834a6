"""Recovering the base model's own sketch tokens: a tokenizer from audio to the ids a released model was trained on.

Step one is a self-distillation corpus (:mod:`~songbloom.sketch.recovery.corpus`): songs the base model generates,
with the sketch ids it sampled and MuQ features of the decoded audio, aligned frame by frame.
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

__all__ = [
    "CorpusFileError",
    "CorpusItem",
    "CorpusPlan",
    "CorpusPlanMismatch",
    "CorpusReport",
    "CorpusSettings",
    "CorpusSong",
    "CorpusStatus",
    "TaskStatus",
    "add_corpus_arguments",
    "corpus_settings_from_args",
    "corpus_status",
    "corpus_task",
    "generate_corpus",
    "iter_corpus",
    "load_corpus",
    "read_plan",
]
