import json

import pytest
import torch
from safetensors.torch import save_file

from songbloom.cli.evaluate import evaluate as main
from songbloom.config import SongBloomConfig
from songbloom.eval.audio_io import load_audio_folder, write_audio
from songbloom.eval.embedders import MelStatsEmbedder
from songbloom.eval.report import lower_is_better, markdown_table, write_report
from songbloom.eval.suite import evaluate_folders, load_prompts, match_key
from songbloom.models.songbloom import SongBloomModel
from tests.eval.conftest import make_batch, tone

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _song_folders(root, seconds=1.0, count=3):
    """Reference songs; 'finetuned' is close to them, 'base' is noise: the report must prefer finetuned."""
    freqs = dict(list({"song_a": 220.0, "song_b": 330.0, "song_c": 440.0}.items())[:count])
    n = int(seconds * 24000)
    for name, f in freqs.items():
        write_audio(root / "ref" / f"{name}.wav", tone(seconds, f, sr=24000, noise=0.02, seed=1), 24000)
        write_audio(root / "ft" / f"{name}.wav", tone(seconds, f * 1.01, sr=24000, noise=0.03, seed=2), 24000)
        write_audio(root / "base" / f"{name}.wav", torch.randn(2, n) * 0.3, 24000)  # stereo noise
    (root / "base" / "broken.wav").write_bytes(b"not audio")
    prompts = root / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"name": n, "lyrics": "hello world", "text": "calm piano song"})
                                 for n in freqs) + "\n")
    return prompts


def test_folder_suite_ranks_models_and_reports_skips(tmp_path):
    prompts_path = _song_folders(tmp_path)
    folders = {"base": load_audio_folder(tmp_path / "base"), "finetuned": load_audio_folder(tmp_path / "ft")}
    assert list(folders["base"].skipped) == [str(tmp_path / "base" / "broken.wav")]
    asr = {"base": "jello", "finetuned": "hello world"}
    results = {}
    for name, folder in folders.items():
        results.update(evaluate_folders({name: folder}, load_audio_folder(tmp_path / "ref"),
                                        prompts=load_prompts(prompts_path), embedder=MelStatsEmbedder(),
                                        asr=lambda wav, sr, n=name: asr[n], unit="word"))
    base, ft = results["base"].metrics, results["finetuned"].metrics
    assert ft["fad"] < base["fad"] and ft["audio_similarity"] > base["audio_similarity"]
    assert ft["wer"] == 0.0 and base["wer"] == 1.0
    assert "no MuQ-MuLan model configured" in results["base"].skipped["mulan_text_audio"]
    assert results["finetuned"].paired_with_reference == 3


def test_report_files_and_table(tmp_path):
    metrics = {"base": {"metrics": {"fad": 2.0, "sketch_accuracy": 0.1, "fad_reference_frames": 10.0}},
               "finetuned": {"metrics": {"fad": 1.0, "sketch_accuracy": 0.05}, "skipped": {"wer": "no ASR"}}}
    paths = write_report(metrics, tmp_path, baseline="base", meta={"seeds": [0]},
                         history=[{"step": 10, "eval/ar_loss": 3.0}, {"step": 20, "eval/ar_loss": 2.0}])
    md = paths["markdown"].read_text()
    assert "| fad | lower | 2 | 1 | -1 (better) |" in md
    assert "| sketch_accuracy | higher | 0.1 | 0.05 | -0.05 (worse) |" in md
    assert "fad_reference_frames" not in md  # bookkeeping values stay in the JSON only
    assert "`finetuned` / wer: no ASR" in md
    for key in ("plot", "history"):
        assert paths[key].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(paths["json"].read_text())["models"]["base"]["metrics"]["fad_reference_frames"] == 10.0
    with pytest.raises(ValueError, match="baseline"):
        write_report(metrics, tmp_path, baseline="nope")
    assert lower_is_better("flow_loss_t0.50") and lower_is_better("per") and not lower_is_better("mulan_text_audio")
    assert "| x | higher | 1 | - |" in markdown_table({"a": {"x": 1.0}, "b": {}}, "a")


def test_match_key_pairs_seeded_names():
    assert match_key("song_s3", {"song": 1}) == "song"
    assert match_key("song_s3", {"song_s3": 1, "song": 2}) == "song_s3"
    assert match_key("other", {"song": 1}) is None


def test_cli_on_folders_with_tiny_muq_and_mulan(tmp_path):
    from songbloom.eval.mulan import build_tiny_mulan
    from songbloom.sketch import build_tiny_muq

    prompts = _song_folders(tmp_path, seconds=0.5, count=2)
    build_tiny_muq(0, tmp_path / "tiny-muq")
    build_tiny_mulan(tmp_path / "mulan-models")
    paths = main(["--out", str(tmp_path / "report"), "--audio", f"base={tmp_path / 'base'}",
                  "--audio", f"finetuned={tmp_path / 'ft'}", "--reference", str(tmp_path / "ref"),
                  "--prompts", str(prompts), "--muq", str(tmp_path / "tiny-muq"),
                  "--mulan", str(tmp_path / "mulan-models" / "mulan")])
    report = json.loads(paths["json"].read_text())
    assert report["baseline"] == "base"
    ft = report["models"]["finetuned"]["metrics"]
    assert {"fad", "audio_similarity", "mulan_text_audio", "mulan_audio_audio"} <= set(ft)
    assert "lyric_error_rate" in report["models"]["finetuned"]["skipped"]  # no --asr given
    assert report["models"]["base"]["skipped_files"]  # the broken file is reported, not fatal
    assert "| fad |" in paths["markdown"].read_text()


def _export(tmp_path, name, seed):
    cfg = SongBloomConfig.from_name("tiny")
    torch.manual_seed(seed)
    model = SongBloomModel(cfg.model)
    d = tmp_path / name
    d.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "generator.safetensors"))
    (d / "config.json").write_text(json.dumps({"songbloom": cfg.to_dict()}))
    return d, cfg


def test_cli_on_two_exports_gives_teacher_forced_metrics(tmp_path):
    base, cfg = _export(tmp_path, "base", 0)
    ft, _ = _export(tmp_path, "ft", 1)
    torch.save([make_batch(cfg.model, seed=s) for s in range(2)], tmp_path / "held_out.pt")
    paths = main(["--out", str(tmp_path / "report"), "--export", f"base={base}", "--export", f"finetuned={ft}",
                  "--held-out", str(tmp_path / "held_out.pt"), "--no-generate", "--timesteps", "0.5"])
    report = json.loads(paths["json"].read_text())
    m_base, m_ft = report["models"]["base"]["metrics"], report["models"]["finetuned"]["metrics"]
    assert set(m_base) == set(m_ft) >= {"ar_loss", "sketch_accuracy", "flow_loss_t0.50"}
    assert m_base["ar_loss"] != m_ft["ar_loss"]
    assert report["meta"]["held_out_batches"] == 2
    with pytest.raises(FileNotFoundError, match="training export"):
        main(["--out", str(tmp_path / "r2"), "--export", f"x={tmp_path}"])
