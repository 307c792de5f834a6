"""The window rule for timed lyrics, in one place: which lines an audio window takes.

A timed line belongs to the window ``[start, end)`` that contains its midpoint: a line that straddles the window's
edge goes whole to the side where most of it is sung (at exactly half, to the later window), so consecutive
windows share no line and lose none. A vocal section without line times counts as one line. A line with no later
timestamp lasts at most :data:`LINE_MAX_SECONDS`.

Used by ``Lyric.crop`` (songbloom.text), conversion, preprocessing segments and training crops (songbloom.data).
"""

from __future__ import annotations

LINE_MAX_SECONDS = 10.0
"""A timed line with no following timestamp is taken to last at most this long."""


def in_window(start: float, end: float, w_start: float, w_end: float) -> bool:
    """The window rule: a line (or a vocal section without line times) belongs to ``[w_start, w_end)`` when its
    midpoint lies inside it."""
    return w_start <= (start + end) / 2 < w_end


def line_end(start: float, next_start: float | None, limit: float | None) -> float:
    """Where a timed line ends: at the next timestamp, the end of its section or song (``limit``), and at most
    :data:`LINE_MAX_SECONDS` after it starts."""
    ends = [start + LINE_MAX_SECONDS] + [t for t in (next_start, limit) if t is not None]
    return min(ends)
