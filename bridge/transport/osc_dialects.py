"""Pure parsers for the OSC transport dialects of Ableton Live, REAPER, Bitwig and Ardour.

Each dialect turns one decoded OSC message (address, arguments) plus its arrival time into a new
:class:`~bridge.transport.state.TransportState`, or ``None`` when the message changes nothing the
app cares about. No sockets here (that is :mod:`bridge.transport.osc_io`), so every parser is tested
by feeding it messages.

``handle()`` never raises on what a DAW (or anything else on the port) sends: wrong argument types
or counts, NaN, garbage strings and unknown addresses are ignored and the state stays sane (finite,
tempo and meter within range). Values are checked one by one; an unexpected exception inside a
parser is still caught (counted in ``internal_errors`` and logged once) because a bug in one
dialect must never stop the transport thread — the tests assert that this count stays zero.

Positions from these DAWs are coarse: AbletonOSC's ``current_song_time`` listener, Ardour's
feedback and our own Live script arrive every ~50-100 ms, and the value was sampled some
milliseconds before it arrives. Extrapolating each raw value from its arrival time would make the
playhead jitter forwards and backwards by that much. So each dialect runs the position through
:class:`PositionLoop`, a first-order phase-locked loop whose slope is fixed by the known rate
(tempo / 60 beats per second, or 1 s/s): each fix moves the estimate a fraction of the way to the
measurement, real jumps (locate, loop wrap) are taken at once, and small backward corrections are
limited to 2 ms per fix so the playhead never visibly steps back.

Conventions: ``position_beats`` counts quarter notes from song start (what Live's song time and
MIDI clock count); where a DAW only reports bars and beats (REAPER, Ardour) the quarter count
assumes the current meter held since bar 1, and a meter the DAW does not send is inferred from
where the beat count wraps. ``position_seconds`` from a dialect that only knows beats assumes the
current tempo held since the start; the clock's tempo map (when the project has one) is the
better answer for that.

Modules: :mod:`~bridge.transport.osc_values` (argument checks), :mod:`~bridge.transport.osc_position`
(:class:`PositionLoop`), :mod:`~bridge.transport.osc_dialect_base` (:class:`OscDialect`),
:mod:`~bridge.transport.osc_live` (AbletonOSC, our Live script), :mod:`~bridge.transport.osc_bars`
(REAPER, Ardour) and :mod:`~bridge.transport.osc_bitwig`; every public name is importable from here.
"""

from __future__ import annotations

from bridge.transport.osc_bars import ArdourOscDialect, ReaperOscDialect
from bridge.transport.osc_bitwig import BitwigOscDialect
from bridge.transport.osc_dialect_base import OscDialect
from bridge.transport.osc_live import AbletonOscDialect, StembridgeOscDialect
from bridge.transport.osc_position import PositionLoop

__all__ = [
    "AbletonOscDialect",
    "ArdourOscDialect",
    "BitwigOscDialect",
    "OscDialect",
    "PositionLoop",
    "ReaperOscDialect",
    "StembridgeOscDialect",
    "make_dialect",
]


_DIALECTS: dict[str, type[OscDialect]] = {
    "ableton": AbletonOscDialect,
    "stembridge": StembridgeOscDialect,
    "reaper": ReaperOscDialect,
    "bitwig": BitwigOscDialect,
    "ardour": ArdourOscDialect,
}


def make_dialect(name: str, **options: object) -> OscDialect:
    """A fresh dialect parser by short name: ableton, stembridge, reaper, bitwig, ardour.

    ``options`` go to the dialect's constructor (ardour: ``reply_port``).
    """
    if name not in _DIALECTS:
        raise ValueError(f"unknown OSC dialect {name!r}; expected one of {sorted(_DIALECTS)}")
    return _DIALECTS[name](**options)
