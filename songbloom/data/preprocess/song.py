"""One song -> validated samples: read its inputs, cut it into segments, encode each segment."""

from __future__ import annotations

from songbloom.data.encoders import Encoders
from songbloom.data.manifest import Problem, SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.inputs import read_song_audio, read_song_lyrics, read_song_sketch
from songbloom.data.preprocess.prompt_source import read_file_prompt
from songbloom.data.preprocess.report import SampleError
from songbloom.data.preprocess.samples import Sample, SampleSlot, build_sample
from songbloom.data.preprocess.segments import encode_segment, plan_segments, segment_name


def process_song(
    rec: SongRecord,
    enc: Encoders,
    cfg: PreprocessConfig,
    num_pitch: int,
    split: str,
    skip_keys: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[Sample], list[Problem], int]:
    """Encode one song into validated samples. Returns ``(samples, problems, n_already_done)``.

    ``samples`` are ``(key, encoded_dict, info)`` tuples ready for the shard writer. A problem with the whole
    song raises :class:`SampleError` (the caller's per-song loop reports it); a problem with one segment
    (silence, validation) skips only that segment and is returned in ``problems``.
    """
    audio = read_song_audio(rec, enc, cfg)
    lyrics = read_song_lyrics(rec, enc, audio.duration)
    layout = plan_segments(rec, cfg, audio, lyrics.timed)
    todo = [i for i in range(layout.count) if layout.keys[i] not in skip_keys]
    if not todo:
        return [], [], layout.count
    song_tokens = read_song_sketch(rec, enc, cfg, audio.frames)
    file_prompt = read_file_prompt(rec, cfg, audio.sample_rate)

    samples: list[Sample] = []
    problems: list[Problem] = []
    for i in todo:
        seg = layout.bounds[i]
        name = segment_name(audio, seg, i)
        try:
            encoded = encode_segment(rec, enc, cfg, audio, seg, name, song_tokens, file_prompt)
            where = SampleSlot(i, layout.count, layout.keys[i], seg[0], name, split)
            samples.append(build_sample(rec, cfg, audio, lyrics, encoded, where, num_pitch, len(enc.lyrics.vocabulary)))
        except SampleError as err:  # one bad segment: the song's other segments still land
            problems.append(err.problem(rec))
    return samples, problems, layout.count - len(todo)
