"""An evaluation that computes nothing says so and exits non-zero; set metrics from few clips are flagged."""

from __future__ import annotations

import json

from songbloom.cli.evaluate import evaluate
from songbloom.eval.audio_io import write_audio
from tests.eval.conftest import tone


def _folder(root, name: str, freqs: list[float]):
    for i, f in enumerate(freqs):
        write_audio(root / name / f"song_{i}.wav", tone(1.0, f, sr=24000, noise=0.02, seed=i), 24000)
    return root / name


def test_nothing_to_evaluate_says_so_and_exits_non_zero(tmp_path):
    gen = _folder(tmp_path, "gen", [220.0, 330.0])  # no reference, no prompts: no metric can run
    out = tmp_path / "report"
    try:
        evaluate(["--out", str(out), "--audio", f"ft={gen}", "--embedder", "mel"])
    except SystemExit as e:
        code, message = e.code, str(e.code)
    else:
        code, message = 0, ""
    assert code not in (0, None), "an evaluation that computed no metric exited 0"
    assert "nothing was evaluated" in message and "no reference folder given" in message, message
    assert not (out / "report.md").exists()


def test_fad_from_few_clips_is_flagged_in_the_report(tmp_path):
    gen = _folder(tmp_path, "gen", [220.0, 330.0])
    ref = _folder(tmp_path, "ref", [221.0, 331.0, 441.0])
    paths = evaluate(["--out", str(tmp_path / "report"), "--audio", f"ft={gen}", "--reference", str(ref),
                      "--embedder", "mel"])
    report = json.loads(paths["json"].read_text())
    assert "fad" in report["models"]["ft"]["metrics"]
    caveat = (report["models"]["ft"].get("caveats") or {}).get("fad", "")
    assert "small n: 2 generated and 3 reference clips" in caveat, report["models"]["ft"]
    assert "## Caveats" in paths["markdown"].read_text() and "small n" in paths["markdown"].read_text()
