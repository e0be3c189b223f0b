"""Sections: resolve the project's sections to seconds, and which section each frame shows.

Beat units go through the beat grid (beat 0 = the grid's first beat, linear between detected beats,
extrapolated at the tempo before the first and past the last beat), so a section starting at beat 64
starts on the 65th detected beat even when the tempo drifts. A section at beat 0 starts at 0 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from bridge.analysis.types import BeatGrid
from bridge.errors import ProjectError
from bridge.mapping.sources import beat_position, beat_time
from bridge.project import schema
from bridge.timebase import DEFAULT_TEMPO_BPM
from bridge.vocab import SectionLook


def _to_seconds(value: float, unit: str, beat_grid: BeatGrid | None, tempo_bpm: float = DEFAULT_TEMPO_BPM) -> float:
    if unit == "beats":
        if value <= 0:
            # "From beat 0" means from the top: the pickup before the first detected beat belongs
            # to the section rather than showing no section for a fraction of a second.
            return 0.0
        if beat_grid is None:
            return float(value) * 60.0 / float(tempo_bpm)
        return float(beat_time(np.array([value]), beat_grid)[0])
    return float(value)


def section_order(sections: Sequence[schema.Section], beat_grid: BeatGrid | None = None, *,
                  tempo_bpm: float | None = None) -> list[int]:
    """Indices of ``sections`` in the order they play, as :func:`resolve_sections` sorts them: by
    start in seconds (beat units through ``beat_grid``), then by position in the list. Without a
    grid (before the analysis) a start in beats is read at a constant ``tempo_bpm`` (the project's;
    DEFAULT_TEMPO_BPM when it has none).

    The first of them has no section before it, so its transition (``transition`` and
    ``transition_beats``) never shows: :func:`section_timeline` gives it mix 1.0 from its start,
    and the app and ``stembridge sections`` say so (to fade the video in from black: the export's
    fade-in)."""
    starts = [_to_seconds(s.start, s.unit, beat_grid, tempo_bpm or DEFAULT_TEMPO_BPM) for s in sections]
    return sorted(range(len(sections)), key=lambda i: (starts[i], i))


def resolve_sections(
    sections: Sequence[schema.Section], beat_grid: BeatGrid, *, duration_seconds: float
) -> tuple[SectionLook, ...]:
    """Sections in seconds, sorted by start.

    ``end`` None → the next section's start, or the song end for the last one. An explicit end past
    the next section's start is cut there (sections never overlap; gaps are allowed and show no
    section). ``transition_beats`` becomes ``transition_seconds`` measured on the beat grid from the
    section start (so it follows the local tempo), capped at the section's length.
    """
    starts = [_to_seconds(s.start, s.unit, beat_grid) for s in sections]
    order = section_order(sections, beat_grid)
    looks: list[SectionLook] = []
    for rank, i in enumerate(order):
        s = sections[i]
        start_s = max(0.0, starts[i])
        next_start = starts[order[rank + 1]] if rank + 1 < len(order) else None
        if s.end is not None:
            end_s = _to_seconds(s.end, s.unit, beat_grid)
            if next_start is not None:
                end_s = min(end_s, next_start)
        else:
            end_s = next_start if next_start is not None else max(float(duration_seconds), start_s)
        end_s = max(end_s, start_s)
        start_beat = float(beat_position(np.array([start_s]), beat_grid)[0])
        trans_end = float(beat_time(np.array([start_beat + s.transition_beats]), beat_grid)[0])
        transition_s = min(max(0.0, trans_end - start_s), end_s - start_s)
        if s.transition == "cut":
            transition_s = 0.0  # a cut switches on the frame that holds the section start
        looks.append(
            SectionLook(
                start_s=start_s,
                end_s=end_s,
                name=s.name,
                prompt=s.prompt,
                negative_prompt=s.negative_prompt,
                seed=s.seed,
                style=s.style,
                transition_seconds=transition_s,
                look=s.look or "",
                transition=s.transition,
            )
        )
    return tuple(looks)


def section_timeline(sections: Sequence[SectionLook], times_s: np.ndarray,
                     frame_ends_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Section shown at each time, and the transition progress into it.

    times_s: shape (n,) seconds. ``frame_ends_s`` (shape (n,)): when given, each time is a frame
    covering [times_s, frame_ends_s), and the frame that holds a section's start already shows that
    section (a cut on a downbeat lands on the frame of the downbeat, as a hit does). Returns
    ``section_index`` int32 (n,), −1 outside every section, and ``section_mix`` float32 (n,): 0 at
    the section start rising linearly to 1 after its ``transition_seconds`` (1.0 for the first
    section, for cuts and outside sections).
    """
    t = np.asarray(times_s, dtype=np.float64)
    index = np.full(t.shape, -1, dtype=np.int32)
    mix = np.ones(t.shape, dtype=np.float32)
    if not sections:
        return index, mix
    starts = np.array([s.start_s for s in sections], dtype=np.float64)
    ends = np.array([s.end_s for s in sections], dtype=np.float64)
    trans = np.array([s.transition_seconds for s in sections], dtype=np.float64)
    if frame_ends_s is None:
        i = np.searchsorted(starts, t, side="right") - 1
    else:
        # the last section starting before the frame ends (1 ns of slack for k / fps rounding)
        i = np.searchsorted(starts, np.asarray(frame_ends_s, dtype=np.float64) - 1e-9, side="left") - 1
    inside = (i >= 0) & (t < ends[np.clip(i, 0, None)])
    index[inside] = i[inside]
    fading = inside & (i > 0) & (trans[np.clip(i, 0, None)] > 0)
    ii = i[fading]
    mix[fading] = np.clip((t[fading] - starts[ii]) / trans[ii], 0.0, 1.0)
    return index, mix


def feedback_transition_preroll(sections: Sequence[SectionLook], fps: Fraction, frame: int, *,
                                history_s: float = 0.0) -> int:
    """Frames to render before ``frame`` so that a feedback transition ("melt") in progress there
    is drawn exactly as in a render from the song start: back to the frame before the melt began
    (its picture is what melts), and ``history_s`` more (what the engine needs to draw that frame
    exactly, e.g. the shader engine's hit envelope). 0 when ``frame`` is in no melt."""
    fps_f = float(fps)
    for i, s in enumerate(sections):
        if i == 0 or s.transition != "melt" or s.transition_seconds <= 0:
            continue
        first = math.floor(s.start_s * fps_f + 1e-6)  # the frame that holds the start (section_timeline)
        done = math.ceil((s.start_s + s.transition_seconds) * fps_f - 1e-9)  # mix is 1 from here
        if first <= frame < done:
            return frame - first + 1 + math.ceil(history_s * fps_f)
    return 0


def keyframe_frames(beat_grid: BeatGrid, *, fps: Fraction, n_frames: int, every_beats: float,
                    section_starts_s: Sequence[float] = ()) -> np.ndarray:
    """Keyframe frame indices: every ``every_beats`` beats on the beat grid (following its tempo
    changes), plus the first and last frame and every section start (so no blend crosses a cut).

    Returns int64, sorted, unique, within [0, n_frames).
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if not (every_beats > 0 and math.isfinite(every_beats)):
        raise ProjectError(f"keyframe_every_beats {every_beats!r} must be a positive number of beats, e.g. 1")
    fps_f = float(fps)
    duration = n_frames / fps_f
    first, last = beat_position(np.array([0.0, duration]), beat_grid)
    k0 = math.ceil(first / every_beats - 1e-9)
    k1 = math.floor(last / every_beats + 1e-9)
    positions = np.arange(k0, k1 + 1, dtype=np.float64) * every_beats
    times = beat_time(positions, beat_grid) if positions.size else np.zeros(0)
    frames = np.floor(times * fps_f + 0.5).astype(np.int64)
    # the frame that holds a section start is that section's first (section_timeline)
    starts = np.floor(np.asarray(section_starts_s, dtype=np.float64) * fps_f + 1e-6).astype(np.int64)
    frames = np.concatenate([frames, starts, [0, n_frames - 1]])
    frames = frames[(frames >= 0) & (frames < n_frames)]
    return np.unique(frames)
