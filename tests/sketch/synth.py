"""Synthetic timbre audio for the sketch tests (thin re-export of the library's demo generator)."""

from songbloom.sketch.demo import NUM_TIMBRES, make_timbre_set, timbre_clip, write_clips

__all__ = ["NUM_TIMBRES", "make_timbre_set", "timbre_clip", "write_clips"]
