"""Command-line flags of corpus generation, for the command that runs it (``python -m songbloom.sketch recover``).

:func:`add_corpus_arguments` adds the corpus flags and the shared sampling flags (``--temp``, ``--cfg-coef``, ...;
:mod:`songbloom.config.sampling`) to a parser; :func:`corpus_settings_from_args` turns them into
:class:`~songbloom.sketch.recovery.corpus_plan.CorpusSettings` for a base model's config, and :func:`corpus_task`
(:mod:`~songbloom.sketch.recovery.corpus`) the task from ``--task-index``/``--num-tasks`` or the SLURM array. An
array job runs the same command in every task (``#SBATCH --array=0-7``); each writes its share into the same
output folder, and a rerun of a task finishes what it left.
"""

from __future__ import annotations

import argparse

from songbloom.config.sampling import add_sampling_arguments, sampling_overrides
from songbloom.inference.prompt import PROMPT_LATENT_MODES
from songbloom.sketch.recovery.corpus_plan import (
    CORPUS_PENALTY_MODE,
    CORPUS_SAMPLING,
    CORPUS_SAMPLING_MODES,
    FEATURE_DTYPES,
    CorpusSettings,
    corpus_sampling,
)
from songbloom.text.g2p import LANGUAGES
from songbloom.text.lyric_policy import LYRICS_POLICIES


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The corpus flags (one argument group) and the sampling flags (another)."""
    g = parser.add_argument_group("corpus: songs the base model generates, with the sketch ids it sampled")
    g.add_argument("--requests", default=None, help="JSONL of {idx, lyrics, prompt_wav} lines (infer.py's format)")
    g.add_argument("--songs-per-request", type=int, default=4, help="songs per JSONL line (different seeds)")
    g.add_argument("--corpus-seed", type=int, default=0, help="song k of the corpus uses seed corpus-seed + k")
    g.add_argument("--layers", type=int, nargs="+", default=[-1],
                   help="MuQ hidden states to keep (0 = encoder input, -1 = last layer)")
    g.add_argument("--corpus-batch-size", type=int, default=1, help="songs generated together")
    g.add_argument("--task-index", type=int, default=None, help="this array task (default: SLURM_ARRAY_TASK_ID)")
    g.add_argument("--num-tasks", type=int, default=None, help="array tasks (default: SLURM_ARRAY_TASK_COUNT)")
    g.add_argument("--max-duration", type=float, default=None,
                   help="longest song in seconds (default: the model's max_dur + 10)")
    g.add_argument("--no-corpus-audio", action="store_true", help="do not store the decoded audio (smaller files)")
    g.add_argument("--feature-dtype", choices=sorted(FEATURE_DTYPES), default="float16")
    g.add_argument("--prompt-latent", choices=list(PROMPT_LATENT_MODES), default="sample")
    g.add_argument("--lyrics-policy", choices=list(LYRICS_POLICIES), default="warn",
                   help="lyrics that lose text: warn (generate), error (skip the line), drop (generate quietly)")
    g.add_argument("--language", choices=list(LANGUAGES), default=None,
                   help="read lyrics in this language unless a line sets 'language' (default: detected)")
    g.add_argument("--no-chunked-decode", action="store_true", help="decode each song in one VAE pass")
    s = parser.add_argument_group(
        "corpus sampling (default: the LM's own distribution, unsharpened: temperature 1, no top-k/top-p, LM "
        "guidance 1, no repetition penalty; the DiT keeps the model's settings; each flag below overrides)")
    s.add_argument("--corpus-sampling", choices=CORPUS_SAMPLING_MODES, default=CORPUS_SAMPLING,
                   help="unsharpened, or model: the base model's own settings as infer.py samples (add --penalty-mode "
                        "release for its repetition penalty too)")
    add_sampling_arguments(s)
    parser.set_defaults(penalty_mode=CORPUS_PENALTY_MODE)


def corpus_settings_from_args(args: argparse.Namespace, config) -> CorpusSettings:
    """:class:`CorpusSettings` from the flags of :func:`add_corpus_arguments` for a model ``config``
    (:class:`~songbloom.config.SongBloomConfig`). Raises ValueError naming a bad flag."""
    over, max_frames = sampling_overrides(args, config)
    params = corpus_sampling(config.inference, max_frames, getattr(args, "corpus_sampling", CORPUS_SAMPLING), **over)
    return CorpusSettings(
        songs_per_request=args.songs_per_request,
        seed=args.corpus_seed,
        layers=tuple(args.layers),
        params=params,
        batch_size=args.corpus_batch_size,
        prompt_latent=args.prompt_latent,
        store_audio=not args.no_corpus_audio,
        feature_dtype=args.feature_dtype,
        lyrics_policy=args.lyrics_policy,
        language=args.language,
        chunked_decode=not args.no_chunked_decode,
    )
