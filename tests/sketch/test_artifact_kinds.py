"""Codebook artifact versions and tokenizer kinds: version-1 files still load with their hash, a linear probe
round-trips with its recovery block, unknown kinds and newer versions are refused, and every consumer
(tokenizer, metrics, CLI) dispatches on the kind."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from songbloom.sketch import (
    SketchCodebook,
    SketchTokenizer,
    codebook_requires_retraining,
    load_codebook,
    muq_fingerprint,
    recovered_codebook,
    recovered_from,
    save_codebook,
    sketch_codebook_record,
)
from songbloom.sketch.artifact import ARTIFACT_FORMAT, check_recovery
from songbloom.sketch.cli import main as cli_main
from tests.sketch.conftest import SR
from tests.sketch.synth import make_timbre_set

K, D = 16, 8
MUQ = dict(muq_model_id="toy-muq", muq_fingerprint="toy", muq_layer=1, muq_licence="CC-BY-NC-4.0")
V1_ALIGNMENT_RULE = "vae48k_hop1920_floor/muq_frame_i=vae_frame_i/trim_tail_v1"
OLD_HASHED_FIELDS = ("codebook_size", "feature_dim", "muq_model_id", "muq_fingerprint", "muq_layer",
                     "feature_normalisation", "muq_sample_rate", "frame_rate", "alignment_rule")


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(K, D, generator=g), "bias": torch.randn(K, generator=g),
            "mean": torch.randn(D, generator=g), "std": torch.rand(D, generator=g) + 0.5}


def recovery_block(sha: str = "ab" * 32, *, num_pitch: int = K, name: str = "songbloom_full_150s") -> dict:
    return {"base": {"name": name, "sketch_tables_sha256": sha, "num_pitch": num_pitch,
                     "file_fingerprint": {"size": 123}},
            "method": "self_distillation_linear_probe", "corpus": {"songs": 10, "frames": 5000, "seconds": 200.0},
            "metrics": {"heldout_id_agreement": 0.8}}


def make_probe(seed: int = 0, recovery: dict | None = None, **kw) -> SketchCodebook:
    t = _tensors(seed)
    return SketchCodebook.linear_probe(t["weight"], t["bias"], t["mean"], t["std"], **MUQ,
                                       feature_normalisation="standardize", recovery=recovery, **kw)


def write_v1_codebook(path, centers: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> str:
    """A codebook exactly as format version 1 wrote it (no tokenizer_kind; its own hash rule), independently of
    the library's writer."""
    meta = {"format": ARTIFACT_FORMAT, "format_version": 1, "codebook_size": int(centers.shape[0]),
            "feature_dim": int(centers.shape[1]), **MUQ, "feature_normalisation": "standardize",
            "muq_sample_rate": 24000, "frame_rate": 25, "alignment_rule": V1_ALIGNMENT_RULE,
            "training": {"old": True}}
    digest = hashlib.sha256(json.dumps({k: meta[k] for k in OLD_HASHED_FIELDS}, sort_keys=True).encode())
    for t in (centers, mean, std):
        digest.update(t.float().contiguous().numpy().tobytes())
    meta["codebook_hash"] = digest.hexdigest()[:16]
    save_file({"codebook": centers, "feature_mean": mean, "feature_std": std}, str(path),
              metadata={"format": ARTIFACT_FORMAT, "format_version": "1", "codebook_hash": meta["codebook_hash"],
                        "metadata_json": json.dumps(meta, sort_keys=True)})
    return meta["codebook_hash"]


def _header(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def _rewrite(path, out, *, tensors=None, meta_update=None, header_update=None):
    header = _header(path)
    if meta_update:
        meta = json.loads(header["metadata_json"])
        meta.update(meta_update)
        header["metadata_json"] = json.dumps(meta, sort_keys=True)
    header.update(header_update or {})
    save_file(tensors if tensors is not None else load_file(str(path)), str(out), metadata=header)
    return out


# ------------------------------------------------------------------------------------------ versions and hashes
def test_a_version_1_file_loads_as_nearest_centroid_with_its_old_hash(tmp_path):
    from songbloom.sketch.alignment import ALIGNMENT_RULE

    assert ALIGNMENT_RULE == V1_ALIGNMENT_RULE  # the v1 writer above spells the rule out
    t = _tensors()
    old_hash = write_v1_codebook(tmp_path / "v1.safetensors", t["weight"], t["mean"], t["std"])
    cb = load_codebook(tmp_path / "v1.safetensors")
    assert cb.tokenizer_kind == "nearest_centroid" and cb.metadata["tokenizer_kind"] == "nearest_centroid"
    assert cb.codebook_hash == old_hash and cb.metadata["format_version"] == 1
    assert cb.recovery is None and recovered_from(cb.metadata) is None
    assert recovered_codebook(tmp_path / "v1.safetensors") is None
    x = torch.randn(30, D)
    brute = torch.cdist((x - t["mean"]) / t["std"], t["weight"]).argmin(-1)
    assert torch.equal(cb.assign(x), brute)
    assert sketch_codebook_record(cb.metadata)["sketch_codebook_hash"] == old_hash

    # The same centres written by this version: same hash, still version 1 (older songbloom reads it).
    new = SketchCodebook.nearest_centroid(t["weight"], t["mean"], t["std"], **MUQ, feature_normalisation="standardize",
                                          training={"old": True})
    assert new.codebook_hash == old_hash
    save_codebook(tmp_path / "new.safetensors", new)
    assert _header(tmp_path / "new.safetensors")["format_version"] == "1"
    assert load_codebook(tmp_path / "new.safetensors").codebook_hash == old_hash


def test_linear_probe_round_trip_with_recovery_block(tmp_path):
    probe = make_probe(recovery=recovery_block(), training={"epochs": 3})
    path = save_codebook(tmp_path / "probe.safetensors", probe)
    assert _header(path)["format_version"] == "2"
    assert set(load_file(str(path))) == {"probe_weight", "probe_bias", "feature_mean", "feature_std"}
    back = load_codebook(path)
    assert back.tokenizer_kind == "linear_probe" and back.centers is None
    assert back.num_codes == K and back.feature_dim == D and back.codebook_hash == probe.codebook_hash
    for name in ("probe_weight", "probe_bias", "mean", "std"):
        assert torch.equal(getattr(back, name), getattr(probe, name)), name
    assert back.recovery == recovery_block() and back.metadata["training"] == {"epochs": 3}
    rec = recovered_codebook(path)
    assert rec is not None and rec.sketch_tables_sha256 == "ab" * 32 and rec.base_name == "songbloom_full_150s"
    assert rec.codebook_hash == probe.codebook_hash

    centers = torch.randn(K, D)  # optional class means: stored, hashed, never used for ids
    with_centers = make_probe(centers=centers)
    back = load_codebook(save_codebook(tmp_path / "centres.safetensors", with_centers))
    assert torch.equal(back.centers, centers) and with_centers.codebook_hash != make_probe().codebook_hash
    x = torch.randn(20, D)
    assert torch.equal(back.assign(x), make_probe().assign(x))


def test_the_hash_covers_the_kind_and_every_tensor_but_not_the_provenance(tmp_path):
    base = make_probe()
    t = _tensors()
    hashes = {base.codebook_hash}
    for name in ("weight", "bias", "mean", "std"):
        changed = dict(t)
        changed[name] = t[name].clone()
        changed[name][0] += 1e-3
        other = SketchCodebook.linear_probe(changed["weight"], changed["bias"], changed["mean"], changed["std"], **MUQ,
                                            feature_normalisation="standardize")
        hashes.add(other.codebook_hash)
    centroid = SketchCodebook.nearest_centroid(t["weight"], t["mean"], t["std"], **MUQ,
                                               feature_normalisation="standardize")
    hashes.add(centroid.codebook_hash)
    assert len(hashes) == 6  # each tensor and the kind change the hash
    # Which base it was recovered from does not change which id a frame gets: same hash.
    assert make_probe(recovery=recovery_block("cd" * 32)).codebook_hash == base.codebook_hash

    path = save_codebook(tmp_path / "probe.safetensors", base)
    tensors = load_file(str(path))
    tensors["probe_bias"][3] += 0.5
    with pytest.raises(ValueError, match="content hash mismatch"):
        load_codebook(_rewrite(path, tmp_path / "edited.safetensors", tensors=tensors))
    # Relabelled as a centroid codebook: its tensors do not fit that kind.
    with pytest.raises(ValueError, match="missing tensors"):
        load_codebook(_rewrite(path, tmp_path / "relabelled.safetensors",
                               meta_update={"tokenizer_kind": "nearest_centroid"}))


def test_unknown_kind_newer_version_and_bad_recovery_are_refused(tmp_path):
    path = save_codebook(tmp_path / "probe.safetensors", make_probe(recovery=recovery_block()))
    with pytest.raises(ValueError, match=r"tokenizer_kind 'vq_transformer' is not known.*upgrade songbloom"):
        load_codebook(_rewrite(path, tmp_path / "kind.safetensors", meta_update={"tokenizer_kind": "vq_transformer"}))
    with pytest.raises(ValueError, match=r"format version 3 is newer than this code \(2\); upgrade songbloom"):
        load_codebook(_rewrite(path, tmp_path / "v3.safetensors", header_update={"format_version": "3"}))
    with pytest.raises(ValueError, match="needs format version 2"):
        load_codebook(_rewrite(path, tmp_path / "v1probe.safetensors", header_update={"format_version": "1"}))
    bad = recovery_block()
    bad["base"]["sketch_tables_sha256"] = "not-a-hash"
    with pytest.raises(ValueError, match=r"bad recovery block: recovery\.base\.sketch_tables_sha256"):
        load_codebook(_rewrite(path, tmp_path / "rec.safetensors", meta_update={"recovery": bad}))
    with pytest.raises(ValueError, match=r"recovery\.corpus\.songs: expected int"):
        check_recovery({**recovery_block(), "corpus": {"songs": "ten", "frames": 1, "seconds": 1.0}})
    with pytest.raises(ValueError, match="16 codes but its base model's num_pitch is 64"):
        make_probe(recovery=recovery_block(num_pitch=64))
    with pytest.raises(ValueError, match=r"probe_bias has shape \(3,\)"):
        t = _tensors()
        SketchCodebook.linear_probe(t["weight"], torch.zeros(3), t["mean"], t["std"], **MUQ,
                                    feature_normalisation="standardize")


def test_retraining_rule_knows_recovered_codebooks():
    meta = make_probe(recovery=recovery_block("ab" * 32)).metadata
    assert codebook_requires_retraining(meta, {"sketch_tables_sha256": "ab" * 32}) is False
    assert codebook_requires_retraining(meta, {"sketch_tables_sha256": "cd" * 32}) is True
    assert codebook_requires_retraining(meta, None) is True  # nothing known about the base's tables


# ------------------------------------------------------------------------------------------ consumers
def test_tokenizer_dispatches_on_the_kind():
    probe = make_probe()
    t = _tensors()
    tok = SketchTokenizer(probe)  # no MuQ needed for features given directly
    x = torch.randn(3, 40, D) * 2
    logits = ((x - t["mean"]) / t["std"]) @ t["weight"].T + t["bias"]
    ids, margin = tok.quantize_features(x)
    assert ids.shape == (3, 40) and torch.equal(ids, logits.argmax(-1))
    top2 = logits.topk(2, dim=-1).values
    torch.testing.assert_close(margin, top2[..., 0] - top2[..., 1])
    assert torch.equal(tok.topk_features(x, 5), logits.topk(5, dim=-1).indices)
    torch.testing.assert_close(probe.scores(x), logits)
    # The probe is not its centres: nearest-centroid on the same matrix gives other ids.
    centroid = SketchTokenizer(SketchCodebook.nearest_centroid(t["weight"], t["mean"], t["std"], **MUQ,
                                                               feature_normalisation="standardize"))
    c_ids = centroid.tokenize_features(x)
    assert not torch.equal(c_ids, ids)
    assert torch.equal(centroid.topk_features(x, 3)[..., 0], c_ids)
    with pytest.raises(ValueError, match="k=17"):
        tok.topk_features(x, 17)
    with pytest.raises(ValueError, match="features have dim 7"):
        tok.quantize_features(torch.randn(4, 7))


def test_metrics_of_a_probe_report_margins_not_quantisation_error():
    x = [torch.randn(50, D), torch.randn(30, D), torch.zeros(0, D)]
    m = SketchTokenizer(make_probe()).evaluate_features(x)
    assert m.tokenizer_kind == "linear_probe" and m.num_frames == 80
    assert m.quantisation_mse is None and m.relative_error is None
    assert m.mean_margin is not None and m.mean_margin > 0 and math.isfinite(m.mean_margin)
    json.dumps(m.to_dict(), allow_nan=False)  # no NaN fields
    assert "n/a" in m.format_table()
    t = _tensors()
    c = SketchTokenizer(SketchCodebook.nearest_centroid(t["weight"], t["mean"], t["std"], **MUQ,
                                                        feature_normalisation="standardize")).evaluate_features(x)
    assert c.tokenizer_kind == "nearest_centroid" and c.quantisation_mse > 0 and c.mean_margin is None


def test_probe_tokenises_audio_and_the_cli_inspects_and_evaluates_it(tiny_muq, tiny_muq_dir, timbre_audio_dirs,
                                                                    tmp_path, capsys):
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(K, 64, generator=g), torch.randn(K, generator=g)
    probe = SketchCodebook.linear_probe(w, b, torch.zeros(64), torch.ones(64), muq_model_id=str(tiny_muq_dir),
                                        muq_fingerprint=muq_fingerprint(tiny_muq), muq_layer=2,
                                        muq_licence="CC-BY-NC-4.0", feature_normalisation="l2",
                                        recovery=recovery_block())
    path = save_codebook(tmp_path / "probe.safetensors", probe)
    tok = SketchTokenizer.from_artifact(path, muq=tiny_muq)
    clips = [wav for _, wav in make_timbre_set(1, 1.0, SR, seed=5)]
    feats = tok.features(torch.stack(clips), SR)
    ids = tok.tokenize(torch.stack(clips), SR)
    expected = (torch.nn.functional.normalize(feats, dim=-1) @ w.T + b).argmax(-1)
    assert ids.shape == (len(clips), 25) and torch.equal(ids, expected)
    many = tok.tokenize_many([clips[0], clips[1][: SR // 2]], SR)
    assert [m.shape[0] for m in many] == [25, 12] and torch.equal(many[0], ids[0])

    assert cli_main(["info", "--codebook", str(path)]) == 0
    out = capsys.readouterr().out
    assert "linear_probe" in out and "recovered from" in out and "songbloom_full_150s" in out and "ab" * 32 in out
    _, held_dir, _, _ = timbre_audio_dirs
    metrics = tmp_path / "metrics.json"
    assert cli_main(["eval", "--codebook", str(path), "--audio-dir", str(held_dir), "--out", str(metrics)]) == 0
    saved = json.loads(metrics.read_text())
    assert saved["tokenizer_kind"] == "linear_probe" and saved["quantisation_mse"] is None and saved["mean_margin"] > 0
    assert cli_main(["tokenize", "--codebook", str(path), "--audio-dir", str(held_dir), "--out-dir",
                     str(tmp_path / "tok")]) == 0
    index = [json.loads(line) for line in (tmp_path / "tok" / "index.jsonl").read_text().splitlines()]
    assert index and all(row["sketch_codebook_hash"] == probe.codebook_hash for row in index)


def test_preprocessing_and_the_run_checks_take_a_probe_codebook(tiny_muq, tiny_muq_dir, tmp_path):
    """Shards tokenised with a linear-probe codebook record its hash, hold its ids, and pass the training input
    check against the same file."""
    from songbloom.data.encoders import SketchTokenizerEncoder
    from songbloom.data.preprocess import PreprocessConfig, run_preprocess
    from songbloom.data.shards import decode_sample, iter_tar_samples
    from songbloom.data.synthetic import make_synthetic_dataset
    from songbloom.training.data_checks import check_codebook
    from tests.data.standins import SHARD_KW, toy_encoders

    g = torch.Generator().manual_seed(4)
    probe = SketchCodebook.linear_probe(torch.randn(K, 64, generator=g), torch.randn(K, generator=g),
                                        torch.zeros(64), torch.ones(64), muq_model_id=str(tiny_muq_dir),
                                        muq_fingerprint=muq_fingerprint(tiny_muq), muq_layer=2,
                                        muq_licence="CC-BY-NC-4.0", feature_normalisation="l2")
    path = save_codebook(tmp_path / "probe.safetensors", probe)
    manifest = make_synthetic_dataset(tmp_path / "songs", num_songs=2, min_seconds=6.0, max_seconds=7.0, seed=3)
    enc = toy_encoders(sketch=False)
    enc.sketch = SketchTokenizerEncoder(SketchTokenizer.from_artifact(path, muq=tiny_muq))
    shards = tmp_path / "shards"
    report = run_preprocess([manifest], PreprocessConfig(out_dir=str(shards), **SHARD_KW), enc)
    assert report.written > 0 and not report.problems, report.to_json()
    index = json.loads((shards / "index.json").read_text())
    assert index["provenance"]["sketch"]["codebook_hash"] == probe.codebook_hash
    check_codebook(str(path), str(shards), index)  # the same file passes the training input check
    sample = decode_sample(next(iter(iter_tar_samples(sorted(map(str, shards.glob("*.tar")))))))
    ids = torch.as_tensor(sample["sketch"])
    assert ids.numel() > 0 and int(ids.min()) >= 0 and int(ids.max()) < K


# ------------------------------------------------------------------------------------------ switch bonus
def test_a_probe_with_a_switch_bonus_decodes_songs_whole_and_hashes_the_bonus(tmp_path):
    from songbloom.sketch.switch_decoding import decode_with_switch_bonus

    plain, sw = make_probe(), make_probe(switch_bonus=0.7)
    assert plain.switch_bonus == 0.0 and "switch_bonus" not in plain.metadata  # old probe files keep their hash
    assert sw.switch_bonus == 0.7 and sw.codebook_hash != plain.codebook_hash
    x = torch.randn(3, 40, D, generator=torch.Generator().manual_seed(5))
    ids = sw.assign(x)
    for song, got in zip(x, ids):
        expected = decode_with_switch_bonus(torch.log_softmax(sw.scores(song), -1), 0.7)
        assert torch.equal(got, expected)
        assert torch.equal(sw.assign(song), expected)  # one song [F, D] decodes the same
    assert not torch.equal(ids, plain.assign(x))  # the bonus does move ids on random features
    assert (ids[:, 1:] != ids[:, :-1]).sum() > (plain.assign(x)[:, 1:] != plain.assign(x)[:, :-1]).sum()
    path = save_codebook(tmp_path / "sw.safetensors", sw)
    back = load_codebook(path)
    assert back.switch_bonus == 0.7 and back.codebook_hash == sw.codebook_hash
    assert torch.equal(back.assign(x), ids)
    from songbloom.sketch.cli import codebook_summary

    assert ("decoding", "songs whole, switch bonus 0.700 nats") in codebook_summary(back.metadata)
    assert "decoding" not in dict(codebook_summary(plain.metadata))
    edited = _rewrite(path, tmp_path / "edited.safetensors", meta_update={"switch_bonus": 0.1})
    with pytest.raises(ValueError, match="content hash mismatch"):
        load_codebook(edited)


def test_a_switch_bonus_is_refused_where_it_means_nothing(tmp_path):
    t = _tensors()
    with pytest.raises(ValueError, match="finite"):
        make_probe(switch_bonus=float("nan"))
    km = SketchCodebook.nearest_centroid(t["weight"], t["mean"], t["std"], **MUQ, feature_normalisation="standardize")
    path = save_codebook(tmp_path / "km.safetensors", km)
    bad = _rewrite(path, tmp_path / "km_bonus.safetensors", meta_update={"switch_bonus": 0.5},
                   header_update={"format_version": "2"})
    with pytest.raises(ValueError, match="switch_bonus"):
        load_codebook(bad)
