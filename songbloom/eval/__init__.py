"""Objective evaluation: pluggable metrics (registry), a training callback and a report for ``scripts/evaluate.py``.

Importing this package is cheap; MuQ, MuQ-MuLan and ASR models load only when a metric that needs them is built.
"""

from songbloom.eval.audio_metrics import AudioSimilarityMetric, FADMetric, MuLanAudioAudioMetric, MuLanTextAudioMetric
from songbloom.eval.edit_distance import ErrorCounts, edit_distance, error_rate
from songbloom.eval.embedders import AudioEmbedder, MelStatsEmbedder, MuQEmbedder, build_embedder, register_embedder
from songbloom.eval.frechet import DEFAULT_EPS, GaussianStats, frechet_distance, frechet_distance_from_stats
from songbloom.eval.intelligibility import LyricErrorRateMetric, build_asr_pipeline, normalise_text, tokens
from songbloom.eval.mulan import MuLanScorer, build_tiny_mulan, load_mulan
from songbloom.eval.registry import Metric, available_metrics, build_metric, register_metric
from songbloom.eval.teacher_forced import DEFAULT_TIMESTEPS, EvalBatch, TeacherForcedMetrics, as_eval_batch

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_TIMESTEPS",
    "AudioEmbedder",
    "AudioSimilarityMetric",
    "ErrorCounts",
    "EvalBatch",
    "FADMetric",
    "GaussianStats",
    "LyricErrorRateMetric",
    "MelStatsEmbedder",
    "Metric",
    "MuLanAudioAudioMetric",
    "MuLanScorer",
    "MuLanTextAudioMetric",
    "MuQEmbedder",
    "TeacherForcedMetrics",
    "as_eval_batch",
    "available_metrics",
    "build_asr_pipeline",
    "build_embedder",
    "build_metric",
    "build_tiny_mulan",
    "edit_distance",
    "error_rate",
    "frechet_distance",
    "frechet_distance_from_stats",
    "load_mulan",
    "normalise_text",
    "register_embedder",
    "register_metric",
    "tokens",
]
