"""Encode songs once into WebDataset shards: VAE moments, sketch tokens, lyric ids, prompt latents.

One call of :func:`run_preprocess` handles one SLURM array task (``task_index`` of ``num_tasks``): it takes
the songs whose id hashes to its task, skips the sample keys already in complete shards (so a killed run
continues without duplicates), encodes the rest in ``workers`` processes, and writes shards, a report of every
skipped item with file and reason, and the shard index with provenance (VAE, codebook, lyric rules, config).

A bad song or segment raises one :class:`SampleError` where it is found; the per-song loop (``driver``) turns
it into the reported :class:`~songbloom.data.manifest.Problem`.

Modules: ``config`` (settings), ``report`` (SampleError, the task report), ``inputs`` (a song's audio, lyrics and
sketch tokens), ``prompt_source`` (the style prompt), ``segments`` (cutting and encoding), ``samples`` (one
shard sample and its write-time checks), ``song`` (one song), ``provenance``, ``tasks`` (array task, split,
workers), ``index`` (``index.json``), ``driver`` (:func:`run_preprocess`).
"""

from songbloom.data.preprocess.config import PROMPT_RULES, PreprocessConfig
from songbloom.data.preprocess.driver import EncoderFactory, run_preprocess
from songbloom.data.preprocess.index import INDEX_FORMAT, write_index
from songbloom.data.preprocess.prompt_source import _prompt_window
from songbloom.data.preprocess.provenance import (
    PROVENANCE_NAME,
    ProvenanceMismatch,
    effective_num_pitch,
    provenance,
)
from songbloom.data.preprocess.report import PreprocessReport, SampleError
from songbloom.data.preprocess.samples import validate_sample
from songbloom.data.preprocess.song import process_song
from songbloom.data.preprocess.tasks import assign_split, resolve_task, stable_hash

__all__ = [
    "INDEX_FORMAT",
    "PROMPT_RULES",
    "PROVENANCE_NAME",
    "EncoderFactory",
    "PreprocessConfig",
    "PreprocessReport",
    "ProvenanceMismatch",
    "SampleError",
    "_prompt_window",
    "assign_split",
    "effective_num_pitch",
    "process_song",
    "provenance",
    "resolve_task",
    "run_preprocess",
    "stable_hash",
    "validate_sample",
    "write_index",
]
