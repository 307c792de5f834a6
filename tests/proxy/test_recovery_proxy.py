"""The CI-sized proxy of sketch-id recovery: recovery beats the best constant guess where the truth is known, and
fails where the ids are independent of the audio. (The full benchmark: benchmarks/sketch_recovery.py.)"""

from pathlib import Path

from songbloom.proxy import ProxySettings, run_benchmark

CI_SETTINGS = ProxySettings(
    seed=1, num_codes=16, song_frames=100, teacher_songs=64, heldout_songs=12, teacher_steps=240,
    corpus_requests=16, songs_per_request=2, probe_epochs=30, downstream=None, control=True,
    control_teacher_steps=120,
)


def test_recovery_proxy_finds_the_hidden_ids_and_the_control_fails(tmp_path: Path) -> None:
    result = run_benchmark(CI_SETTINGS, tmp_path)
    assert result["id_agreement"] >= result["most_frequent_code_rate"] + 0.2, result
    assert result["ar_loss"]["recovered"] < result["ar_loss"]["fresh"], result["ar_loss"]
    # the proxy checks itself: hidden ids follow the audible sound, and the teacher's rendering is measured
    assert result["hidden_stability"] >= 0.9 and result["validity"]["hidden_ids_stable_ge_0.9"]
    assert result["hidden_locality"] >= 0.9 and result["validity"]["hidden_ids_local_ge_0.9"]
    assert 0.0 < result["teacher_fidelity"] <= 1.0
    # the corpus's render means in the hidden codebook's view (a diagnostic the recovery cannot run) find the ids
    view = result["codebook_view"]
    assert view["id_agreement"] >= result["most_frequent_code_rate"] + 0.2, view
    assert 0.0 < view["change_rate"] < 1.0 and view["codes_seen"] >= 2, view
    control = result["controls"]["independent_ids"]
    assert control["failed_as_required"], control
    assert control["id_agreement"] < control["most_frequent_code_rate"] + 0.2, control
    # the recovery never saw the hidden tokenizer: its folder was deleted before the subprocess started
    assert not (tmp_path / "scenario" / "hidden_tokenizer").exists()
    meta = result["recovery_metadata"]
    assert meta["method"] and meta["corpus"]["songs"] > 0
    # the switch bonus was chosen on "the user's songs" the benchmark wrote, not on the teacher's generations
    assert meta["metrics"]["calibration_songs"] == CI_SETTINGS.calibration_songs > 0, meta["metrics"]
    assert len((tmp_path / "scenario" / "calibration_songs" / "songs.jsonl").read_text().splitlines()) == 24
