"""Corpus flags: parsed into CorpusSettings over the model's own sampling settings."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams
from songbloom.sketch.recovery import CorpusSettings, add_corpus_arguments, corpus_settings_from_args
from songbloom.sketch.recovery.corpus_plan import CORPUS_PENALTY_MODE


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    add_corpus_arguments(ap)
    return ap.parse_args(argv)


def test_defaults_sample_the_lms_own_distribution_unsharpened_without_the_repetition_penalty():
    cfg = SongBloomConfig.from_name("tiny")
    inf = cfg.inference
    # the model's own settings sharpen the LM and penalise repeats; the corpus does neither
    assert inf.penalty_repeat and inf.temp < 1 and inf.top_k > 0 and inf.cfg_coef != 1.0
    settings = corpus_settings_from_args(_parse([]), cfg)
    p = settings.params
    assert (p.temp, p.top_k, p.top_p, p.lm_coef, p.penalty_mode) == (1.0, 0, 0.0, 1.0, "none")
    # the DiT renders as the model does
    model = SamplingParams.from_config(cfg)
    assert (p.dit_coef, p.diff_temp, p.steps, p.dit_cfg_type) == (model.dit_coef, model.diff_temp, model.steps,
                                                                  model.dit_cfg_type)
    assert settings == CorpusSettings(songs_per_request=4, params=p)
    assert settings.store_audio and settings.feature_dtype == "float16" and settings.layers == (-1,)


def test_api_default_sampling_matches_the_command_line():
    cfg = SongBloomConfig.from_name("tiny")
    bundle = SimpleNamespace(config=cfg)
    from_flags = corpus_settings_from_args(_parse([]), cfg).sampling(bundle)
    assert CorpusSettings().sampling(bundle).as_dict() == from_flags.as_dict()
    assert from_flags.penalty_mode == CORPUS_PENALTY_MODE == "none"


def test_infer_py_sampling_is_two_flags_away():
    cfg = SongBloomConfig.from_name("tiny")
    s = corpus_settings_from_args(_parse(["--corpus-sampling", "model", "--penalty-mode", "release"]), cfg)
    assert s.params.as_dict() == SamplingParams.from_config(cfg).as_dict()
    s = corpus_settings_from_args(_parse(["--corpus-sampling", "model"]), cfg)
    assert s.params.as_dict() == SamplingParams.from_config(cfg, penalty_mode="none").as_dict()


def test_flags_reach_the_settings():
    cfg = SongBloomConfig.from_name("tiny")
    args = _parse([
        "--requests", "jobs.jsonl", "--songs-per-request", "3", "--corpus-seed", "7", "--layers", "0", "-1",
        "--corpus-batch-size", "8", "--max-duration", "2", "--no-corpus-audio", "--feature-dtype", "float32",
        "--language", "ja", "--temp", "0.5", "--cfg-coef", "2", "3", "--steps", "4", "--task-index", "1",
        "--num-tasks", "2",
    ])
    s = corpus_settings_from_args(args, cfg)
    assert (s.songs_per_request, s.seed, s.layers, s.batch_size) == (3, 7, (0, -1), 8)
    assert not s.store_audio and s.feature_dtype == "float32" and s.language == "ja"
    assert s.params.temp == 0.5 and s.params.cfg_coef == (2.0, 3.0) and s.params.steps == 4
    assert s.params.max_frames == 50 and s.params.top_k == 0  # flags given win; the others stay unsharpened
    assert (args.requests, args.task_index, args.num_tasks) == ("jobs.jsonl", 1, 2)


def test_bad_flags_are_named():
    cfg = SongBloomConfig.from_name("tiny")
    with pytest.raises(ValueError, match="--cfg-coef takes one value or two"):
        corpus_settings_from_args(_parse(["--cfg-coef", "1", "2", "3"]), cfg)
    with pytest.raises(ValueError, match="songs_per_request"):
        corpus_settings_from_args(_parse(["--songs-per-request", "0"]), cfg)
