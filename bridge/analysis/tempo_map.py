"""Beat grids from a tempo map a DAW exported as a MIDI file (``set_tempo`` / ``time_signature``).

When the producer exports the arrangement's tempo track (every DAW can write a .mid with it),
analysis uses that grid instead of guessing beats: it is exact even through rubato and meter changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bridge.analysis.types import BeatGrid
from bridge.errors import ProjectError


def beat_grid_from_midi(
    path: str | os.PathLike[str], *, duration_seconds: float, offset_seconds: float = 0.0
) -> BeatGrid:
    """Beats and downbeats from a MIDI file's tempo and time-signature events.

    A beat is one denominator note (a quarter in 4/4, an eighth in 6/8); bars restart at every
    time-signature change. The grid continues at the last tempo until ``duration_seconds``.
    ``offset_seconds`` is the song time of MIDI time 0. tempo_bpm is the median quarter-note tempo.
    """
    import mido  # light, but only needed here

    path = Path(path)
    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise ProjectError(
            f"{path}: could not be read as a MIDI file ({e}). Export the tempo track from your DAW as "
            "a Standard MIDI File (.mid)."
        ) from None
    if mid.type == 2:
        raise ProjectError(f"{path}: MIDI type 2 (asynchronous tracks) has no single tempo map; export type 0 or 1.")
    tpq = mid.ticks_per_beat
    # (tick, microseconds per quarter) and (tick, numerator, denominator), in tick order.
    tempos: list[tuple[int, int]] = [(0, 500000)]
    sigs: list[tuple[int, int, int]] = [(0, 4, 4)]
    tick = 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            tempos.append((tick, msg.tempo))
        elif msg.type == "time_signature":
            sigs.append((tick, msg.numerator, msg.denominator))

    def dedupe(events):  # keep the last event at each tick
        out = {}
        for e in events:
            out[e[0]] = e
        return [out[k] for k in sorted(out)]

    tempos, sigs = dedupe(tempos), dedupe(sigs)
    t_ticks = np.array([t for t, _ in tempos], dtype=np.float64)
    t_uspq = np.array([u for _, u in tempos], dtype=np.float64)
    # seconds at each tempo change: cumulative sum of (ticks between changes × seconds per tick)
    sec_at_change = np.concatenate([[0.0], np.cumsum(np.diff(t_ticks) * t_uspq[:-1] / 1e6 / tpq)])

    def tick_to_seconds(ticks: np.ndarray) -> np.ndarray:
        i = np.searchsorted(t_ticks, ticks, side="right") - 1
        return sec_at_change[i] + (ticks - t_ticks[i]) * t_uspq[i] / 1e6 / tpq

    end_s = duration_seconds - offset_seconds
    beats: list[float] = []
    downbeats: list[float] = []
    beats_per_bar = sigs[0][1]
    for k, (start, num, den) in enumerate(sigs):
        stop = sigs[k + 1][0] if k + 1 < len(sigs) else None
        beat_ticks = tpq * 4 / den
        n = 0
        while True:
            tk = start + n * beat_ticks
            if stop is not None and tk >= stop - 1e-9:
                break
            t = float(tick_to_seconds(np.array([tk]))[0])
            if t > end_s + 1e-9:
                break
            beats.append(t)
            if n % num == 0:
                downbeats.append(t)
            n += 1
        if stop is None:
            break
    seconds_per_quarter = t_uspq / 1e6
    tempo_bpm = float(np.median(60.0 / seconds_per_quarter))
    return BeatGrid(
        tempo_bpm=tempo_bpm,
        beats_s=np.asarray(beats, dtype=np.float64) + offset_seconds,
        downbeats_s=np.asarray(downbeats, dtype=np.float64) + offset_seconds,
        beats_per_bar=int(beats_per_bar),
        source="midi",
    )
