"""Beat grids from a tempo map a DAW exported as a MIDI file (``set_tempo`` / ``time_signature``).

When the producer exports the arrangement's tempo track (every DAW can write a .mid with it),
analysis uses that grid instead of guessing beats: it is exact even through rubato and meter changes.
"""

from __future__ import annotations

import os

from bridge.timebase import BeatGrid


def beat_grid_from_midi(
    path: str | os.PathLike[str], *, duration_seconds: float, offset_seconds: float = 0.0
) -> BeatGrid:
    """Beats and downbeats from a MIDI file's tempo and time-signature events.

    A beat is one denominator note (a quarter in 4/4, an eighth in 7/8), or a dotted quarter in
    compound meter (6/8, 12/8); bars restart at every time-signature change. The grid continues at
    the last tempo until ``duration_seconds`` and keeps the file's tempo map for quarter-note
    positions. ``offset_seconds`` is the song time of MIDI time 0. ``tempo_bpm`` is in beats.
    """
    # One MIDI tempo-map reader in the project: BeatGrid.from_midi_file (exact through tempo
    # changes in the middle of a beat); this function only counts its beats to the song's end.
    tmap = BeatGrid.from_midi_file(path, offset_seconds=offset_seconds)
    return tmap.with_beats_until(duration_seconds, source="midi")
