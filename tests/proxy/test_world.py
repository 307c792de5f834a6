"""The proxy world: an exact VAE round trip, seeded songs, a hidden tokenizer that never leaks, a real control."""

from pathlib import Path

import pytest
import torch
import torchaudio

from songbloom.proxy.hidden import HiddenTokenizer, choose_layer, fit_hidden_tokenizer
from songbloom.proxy.muq import damp_self_attention, proxy_muq
from songbloom.proxy.scenario import all_layer_features, hidden_locality, hidden_stability, shuffle_ids
from songbloom.proxy.world import HOP, SongWorld, WorldSettings, band_noise_rows, proxy_vae
from songbloom.sketch import build_tiny_muq


def test_proxy_vae_round_trip_is_exact() -> None:
    vae = proxy_vae()
    z = 0.25 + torch.rand(2, 8, 12)
    with torch.no_grad():
        audio = vae.decode(z)
        assert audio.shape == (2, 2, 12 * HOP)
        assert torch.allclose(vae.encode(audio, sample=False), z, atol=1e-5)
        # joins between frames are smooth (Hann-windowed bursts), so no frame edge is a click
        assert audio[..., HOP - 1 : HOP + 1].abs().max() < 1e-3


def test_every_mel_band_muq_reads_carries_a_channel() -> None:
    """The basis tiles MuQ's 128 mel bands (0-12 kHz at its 24 kHz input): none is left empty."""
    rows = band_noise_rows()
    power = torch.fft.rfft(rows, dim=-1).abs().pow(2).sum(0)  # all channels at unit amplitude
    mel = torchaudio.functional.melscale_fbanks(HOP // 2 + 1, 0.0, 12000.0, 128, 48000)
    per_band = power.float() @ mel
    assert per_band.min() > 1e-3 * per_band.max(), "a mel band MuQ reads carries no channel"
    assert torch.allclose(rows @ rows.T, torch.eye(rows.shape[0], dtype=rows.dtype), atol=1e-10)


def test_hidden_ids_follow_the_audible_sound_not_rounding_noise() -> None:
    """Noise 70 dB below the song leaves the hidden ids as they are (with pure tones, most mel bins were empty
    and such noise changed nearly every id: the ids were rounding noise that no model could render)."""
    world = SongWorld(WorldSettings(seed=2, num_notes=32, song_frames=100))
    muq = proxy_muq(3)
    songs = world.songs("s", 8, world.teacher_styles, 0)
    layer = choose_layer(muq, 2)
    feats = all_layer_features(muq, [s.audio for s in songs])
    hidden = fit_hidden_tokenizer([f[layer] for f in feats], layer, 32, seed=0)
    assert hidden_stability(muq, hidden, [s.audio for s in songs], feats, seed=0, noise_db=-70.0) >= 0.95


def test_hidden_ids_follow_the_sound_around_them_not_sound_seconds_away() -> None:
    """Replacing the sound from 0.8 s after a frame onwards leaves its hidden id as it is with the proxy MuQ.
    With the plain random MuQ, self-attention mixes the whole clip into every frame and such a change moved
    about 40 % of the ids: ids no model renders patch by patch."""
    world = SongWorld(WorldSettings(seed=6, num_notes=64, song_frames=200))
    songs = world.songs("s", 12, world.teacher_styles, 0)
    audio = [s.audio for s in songs]
    shares = {}
    for name, muq in (("proxy", proxy_muq(7)), ("plain", build_tiny_muq(seed=7))):
        feats = all_layer_features(muq, audio)
        hidden = fit_hidden_tokenizer([f[1] for f in feats], 1, 64, seed=6)
        shares[name] = hidden_locality(muq, hidden, audio, feats)
    assert shares["proxy"] >= 0.9, shares
    assert shares["plain"] < 0.8, shares  # the check can fail: the undamped MuQ does


def test_damping_needs_self_attention() -> None:
    muq = build_tiny_muq(seed=0)
    assert damp_self_attention(muq, 0.5) == muq.config.encoder_depth
    with pytest.raises(ValueError, match="self-attention"):
        damp_self_attention(torch.nn.Linear(2, 2), 0.5)


def test_songs_are_seeded_and_follow_the_transition_table() -> None:
    world = SongWorld(WorldSettings(seed=3, num_notes=16, song_frames=100))
    a, b = world.song("x", 0, 11), world.song("x", 0, 11)
    assert torch.equal(a.notes, b.notes) and torch.equal(a.audio, b.audio)
    assert a.latents.shape == (8, 100) and a.audio.shape == (100 * HOP,)
    changes = [(int(p), int(n)) for p, n in zip(a.notes[:-1], a.notes[1:], strict=True) if p != n]
    assert changes, "a 4 s song changes note"
    for prev, nxt in changes:
        assert nxt in world.successor_table[prev].tolist()
    assert not torch.equal(world.song("x", 0, 12).notes, a.notes)


def test_hidden_tokenizer_saves_loads_and_is_forgotten(tmp_path: Path) -> None:
    world = SongWorld(WorldSettings(seed=0, num_notes=16, song_frames=100))
    muq = build_tiny_muq(seed=1)
    songs = world.songs("s", 6, world.teacher_styles, 0)
    feats = all_layer_features(muq, [s.audio for s in songs])
    layer = choose_layer(muq, 5)
    assert layer >= 1
    hidden = fit_hidden_tokenizer([f[layer] for f in feats], layer, 16, seed=0)
    ids = hidden.ids(feats[0][layer])
    assert ids.shape == (100,) and int(ids.max()) < 16
    folder = hidden.save(tmp_path / "hidden")
    again = HiddenTokenizer.load(folder)
    assert again.layer == layer and torch.equal(again.ids(feats[0][layer]), ids)
    HiddenTokenizer.forget(folder)
    assert not folder.exists()


def test_control_ids_belong_to_another_song() -> None:
    world = SongWorld(WorldSettings(seed=0, num_notes=16, song_frames=100))
    songs = world.songs("s", 3, world.teacher_styles, 0)
    for i, s in enumerate(songs):
        s.ids = torch.full((100,), i)
    shuffle_ids(songs)
    assert [int(s.ids[0]) for s in songs] == [1, 2, 0]


@pytest.mark.parametrize("bad", [{"num_notes": 1}, {"successors": (0.5, 0.4)}])
def test_world_settings_refuse_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        WorldSettings(**bad)


def test_finetune_songs_stay_within_the_frames_per_code_budget(tmp_path: Path) -> None:
    from songbloom.config import SongBloomConfig
    from songbloom.proxy.benchmark import ProxySettings, finetune_split
    from songbloom.proxy.scenario import build_scenario
    from songbloom.text.vocab import Vocabulary

    cfg = SongBloomConfig.from_name("tiny", num_pitch=16)
    sc = build_scenario(tmp_path, seed=0, num_codes=16, teacher_songs=4, heldout_songs=2, song_frames=100,
                        independent_ids=False, vocab=Vocabulary(list(cfg.model.lyric_vocab)),
                        lyric_max_len=cfg.model.lyric_max_len)
    settings = ProxySettings(num_codes=16, finetune_frames_per_code=4.5, finetune_heldout_songs=2)
    train, held = finetune_split(sc, settings)
    frames = sum(s.latents.shape[-1] for s in train)
    assert frames <= 4.5 * 16 and frames >= 4.5 * 16 - 4  # whole patches of 4, as close to the budget as fits
    assert all(s.style in sc.world.new_styles for s in train + held)
    assert all(s.extra["features"].shape[1] == s.latents.shape[-1] for s in train + held)
