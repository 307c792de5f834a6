"""What the recovery corpus would give in the hidden codebook's own view: a diagnostic the recovery cannot run.

Why it exists: every tokenizer fitted to the teacher's sampled ids (linear probe, nearest class mean, LDA, learnt
metrics) switches 9-14 % less often on real audio than the hidden ids on some seeds. This asks whether the corpus
itself is the limit: it takes the mean of the teacher's renders of each id *in the hidden tokenizer's projection*
and assigns every frame to the nearest such mean. If that rule switches as often as the hidden ids, the corpus
carries them and what is missing is the view; if not, the renders themselves are the limit. It also reports how
well the rule predicts the corpus labels, which is what a fit to the labels maximises.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from songbloom.proxy.hidden import HiddenTokenizer
from songbloom.sketch.kmeans import nearest_code
from songbloom.sketch.recovery.evaluate import agreement
from songbloom.sketch.switch_decoding import switch_rate


def render_means_in_view(hidden: HiddenTokenizer, features: Sequence[torch.Tensor],
                         labels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(means [K, P], seen [K])``: the mean projected render of each label; codes never sampled are not seen."""
    k = hidden.num_codes
    z = torch.cat([f.float() for f in features]) @ hidden.projection
    y = torch.cat([lab.long() for lab in labels])
    counts = torch.bincount(y, minlength=k)
    means = torch.zeros(k, z.shape[1]).index_add_(0, y, z) / counts.clamp_min(1)[:, None].float()
    return means, counts > 0


def nearest_render_mean_ids(hidden: HiddenTokenizer, means: torch.Tensor, seen: torch.Tensor,
                            features: torch.Tensor) -> torch.Tensor:
    """``[F, D]`` features -> ``[F]`` ids of the nearest seen render mean in the hidden projection."""
    codes = seen.nonzero().squeeze(-1)
    return codes[nearest_code(features.float() @ hidden.projection, means[codes])[0]]


def codebook_view_scores(hidden: HiddenTokenizer, corpus_features: Sequence[torch.Tensor],
                         corpus_labels: Sequence[torch.Tensor], heldout_features: Sequence[torch.Tensor],
                         heldout_ids: Sequence[torch.Tensor]) -> dict[str, float]:
    """Agreement and change rate of the nearest-render-mean rule on held-out songs (against their hidden ids),
    and its agreement with the teacher's labels on the corpus (features of :attr:`HiddenTokenizer.layer`)."""
    if not corpus_features:
        raise ValueError("the recovery corpus holds no songs: nothing to take render means from")
    means, seen = render_means_in_view(hidden, corpus_features, corpus_labels)
    held = [nearest_render_mean_ids(hidden, means, seen, f) for f in heldout_features]
    on_corpus = [nearest_render_mean_ids(hidden, means, seen, f) for f in corpus_features]
    return {
        "id_agreement": agreement(held, heldout_ids),
        "change_rate": switch_rate(held),
        "label_agreement": agreement(on_corpus, corpus_labels),
        "codes_seen": float(seen.sum()),
    }
