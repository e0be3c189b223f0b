"""The one transport state every sync source produces (MIDI clock, MTC, OSC dialects, Link).

Immutable: the transport I/O thread builds a new TransportState per message and swaps a single
reference, so readers (preview, GUI) never see a half-updated state and need no lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TransportState:
    """Where the DAW is, as of ``received_at``.

    playing: the transport is rolling.
    tempo_bpm: quarter-note tempo (beats per minute as the DAW shows it).
    position_beats: song position in beats from song start (beat = quarter note unless the source
        says otherwise), at ``received_at``.
    position_seconds: song position in seconds from song start, at ``received_at``.
    bar, beat: 1-based bar number and 1-based beat within the bar (beat may be fractional).
    time_signature: (numerator, denominator).
    source: which source produced it: "midi_clock", "mtc", "ableton_osc", "reaper_osc",
        "bitwig_osc", "ardour_osc", "stembridge_osc", "link", "free" (the app's own clock).
    received_at: time.monotonic() seconds at which the position above was true.
    clock_ratio: how fast the source's clock runs against ours (DAW seconds per monotonic second,
        estimated by the OSC dialects: a DAW's audio clock drifts up to ~0.5 %); the transport
        clock extrapolates the position at ``clock_ratio`` times the tempo.
    """

    playing: bool = False
    tempo_bpm: float = 120.0
    position_beats: float = 0.0
    position_seconds: float = 0.0
    bar: int = 1
    beat: float = 1.0
    time_signature: tuple[int, int] = (4, 4)
    source: str = "free"
    received_at: float = 0.0
    clock_ratio: float = 1.0

    def with_(self, **changes: object) -> TransportState:
        return replace(self, **changes)

    def to_json(self, *, t: float | None = None) -> dict[str, object]:
        """The object `stembridge listen --json` prints (one per line)."""
        return {
            "t": round(self.received_at if t is None else t, 6),
            "source": self.source,
            "playing": self.playing,
            "tempo_bpm": round(self.tempo_bpm, 4),
            "position_beats": round(self.position_beats, 5),
            "position_seconds": round(self.position_seconds, 5),
            "bar": self.bar,
            "beat": round(self.beat, 4),
            "time_signature": list(self.time_signature),
        }
