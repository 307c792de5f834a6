"""Sketch tokens: MuQ features at the VAE frame rate, mapped to ids by a versioned codebook artifact (k-means
centres, or a linear probe recovered from a base model's own ids).

Heavy imports (MuQ, transformers) happen only when a MuQ is built or loaded.
"""

from songbloom.sketch.alignment import align_to_vae_frames, num_muq_frames, num_vae_frames
from songbloom.sketch.artifact import (
    TOKENIZER_KINDS,
    SketchCodebook,
    build_probe_metadata,
    check_num_pitch,
    check_recovery,
    codebook_requires_retraining,
    load_codebook,
    read_codebook_metadata,
    recovered_codebook,
    recovered_from,
    save_codebook,
    sketch_codebook_record,
)
from songbloom.sketch.demo import build_demo_codebook
from songbloom.sketch.features import MuQFeatureExtractor
from songbloom.sketch.kmeans import MiniBatchKMeans
from songbloom.sketch.metrics import CodebookMetrics, cluster_purity
from songbloom.sketch.muq_backbone import (
    DEFAULT_MUQ_MODEL_ID,
    MUQ_WEIGHTS_LICENCE,
    build_tiny_muq,
    load_muq,
    muq_fingerprint,
)
from songbloom.sketch.tokenizer import SketchTokenizer
from songbloom.sketch.trainer import CodebookTrainer, CodebookTrainingConfig, TrainingResult

__all__ = [
    "DEFAULT_MUQ_MODEL_ID",
    "MUQ_WEIGHTS_LICENCE",
    "TOKENIZER_KINDS",
    "CodebookMetrics",
    "CodebookTrainer",
    "CodebookTrainingConfig",
    "MiniBatchKMeans",
    "MuQFeatureExtractor",
    "SketchCodebook",
    "SketchTokenizer",
    "TrainingResult",
    "align_to_vae_frames",
    "build_demo_codebook",
    "build_probe_metadata",
    "build_tiny_muq",
    "check_num_pitch",
    "check_recovery",
    "cluster_purity",
    "codebook_requires_retraining",
    "load_codebook",
    "load_muq",
    "muq_fingerprint",
    "num_muq_frames",
    "num_vae_frames",
    "read_codebook_metadata",
    "recovered_codebook",
    "recovered_from",
    "save_codebook",
    "sketch_codebook_record",
]
