"""What to follow: one value naming a DAW sync setup, built by the CLI from its options and by the app
directly (no argparse on the GUI side).

:class:`SyncSpec` holds the source of song position (MIDI clock, MTC or one OSC dialect), its
address (an OSC ``[HOST:]PORT`` or a MIDI input port name), whether Ableton Link joins, and the
latency offset. :func:`bridge.transport.listen.open_sync_sources` opens what a SyncSpec names;
:meth:`SyncSpec.from_args` reads the options :func:`bridge.transport.listen.add_sync_arguments`
adds. Pure data: importing this opens nothing and needs neither numpy nor a MIDI backend.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from bridge.errors import TransportError
from bridge.transport import osc_protocol as P

#: Sources of song position, as SyncSpec.source names them (the CLI option is ``--`` + the name with
#: ``-`` for ``_``: ``reaper_osc`` is ``--reaper-osc``).
POSITION_SOURCES = ("midi", "mtc", "osc", "ableton_osc", "reaper_osc", "bitwig_osc", "ardour_osc")
#: Sources whose address is a MIDI input port name (the rest take an OSC [HOST:]PORT).
MIDI_SOURCES = frozenset({"midi", "mtc"})
#: The address each OSC source uses when none is given (the CLI option without a value).
DEFAULT_ADDRESSES: dict[str, str] = {
    "osc": str(P.STEMBRIDGE_OSC_PORT),
    "ableton_osc": f"127.0.0.1:{P.ABLETON_OSC_LIVE_PORT}",
    "reaper_osc": str(P.REAPER_OSC_SUGGESTED_PORT),
    "bitwig_osc": str(P.BITWIG_DBM_SEND_PORT),
    "ardour_osc": f"127.0.0.1:{P.ARDOUR_OSC_PORT}",
}


def option_name(source: str) -> str:
    """``"reaper_osc"`` → ``"--reaper-osc"``: how the CLI (and error messages) name a source."""
    return "--" + source.replace("_", "-")


@dataclass(frozen=True)
class SyncSpec:
    """One DAW sync setup.

    source:
        One of :data:`POSITION_SOURCES`, or None for Ableton Link alone (``link=True``).
    address:
        OSC sources: ``[HOST:]PORT`` (None: :data:`DEFAULT_ADDRESSES`); ``midi`` / ``mtc``: the MIDI
        input port name (required).
    link, link_quantum_beats:
        Join the Ableton Link session; the quantum in quarter notes.
    midi_api:
        MIDI backend (``alsa``, ``jack``, ``coremidi``, ``winmm``; None: the first that works).
    ableton_reply_port, bitwig_receive_port, ardour_reply_port:
        The second port some dialects need (AbletonOSC's replies, DrivenByMoss's input, Ardour's
        feedback; 0 = any free port).
    latency_ms:
        Show positions this much later than the DAW reports (None: the calibrated offset, else 0).

    Raises TransportError naming the bad value and the fix.
    """

    source: str | None = None
    address: str | None = None
    link: bool = False
    link_quantum_beats: float = 4.0
    midi_api: str | None = None
    ableton_reply_port: int = P.ABLETON_OSC_REPLY_PORT
    bitwig_receive_port: int = P.BITWIG_DBM_RECEIVE_PORT
    ardour_reply_port: int = 0
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        if self.source is not None and self.source not in POSITION_SOURCES:
            raise TransportError(f"sync source {self.source!r} is unknown: use one of {', '.join(POSITION_SOURCES)} "
                                 "(or None with link=True for Ableton Link alone)")
        if self.source is None and not self.link:
            raise TransportError(
                "no sync source given: name one of " + ", ".join(POSITION_SOURCES) + " or set link=True "
                "(daw_scripts/README.md says which to use for your DAW)")
        if self.source is None and self.address is not None:
            raise TransportError(f"sync address {self.address!r} given without a source: name the source it belongs to")
        if self.source in MIDI_SOURCES and not (self.address or "").strip():
            raise TransportError(f"{option_name(self.source)} needs a MIDI input port name: pick one of the ports "
                                 "`stembridge listen --list-ports` lists")
        if self.source is not None and self.source not in MIDI_SOURCES and self.address is None:
            object.__setattr__(self, "address", DEFAULT_ADDRESSES[self.source])
        for name in ("ableton_reply_port", "bitwig_receive_port", "ardour_reply_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise TransportError(f"{name} {port!r} must be a UDP port number 0-65535")
        if not (isinstance(self.link_quantum_beats, int | float) and math.isfinite(self.link_quantum_beats)
                and self.link_quantum_beats > 0):
            raise TransportError(f"link_quantum_beats {self.link_quantum_beats!r} must be a number of beats > 0, e.g. 4")
        if self.latency_ms is not None and not (isinstance(self.latency_ms, int | float) and math.isfinite(self.latency_ms)):
            raise TransportError(f"latency_ms {self.latency_ms!r} must be a finite number of milliseconds (or None)")

    @property
    def option(self) -> str | None:
        """The CLI option of the position source (``"--reaper-osc"``), None for Link alone."""
        return None if self.source is None else option_name(self.source)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SyncSpec:
        """The SyncSpec the options of :func:`~bridge.transport.listen.add_sync_arguments` name.
        Raises TransportError when several position sources or none (and no ``--link``) are given."""
        chosen = [name for name in POSITION_SOURCES if getattr(args, name, None) is not None]
        if len(chosen) > 1:
            names = ", ".join(option_name(c) for c in chosen)
            raise TransportError(
                f"{names}: choose one source of song position; several would overwrite each other's "
                "position. --link can be added to any one of them."
            )
        link = bool(getattr(args, "link", False))
        if not chosen and not link:
            raise TransportError(
                "no sync source given: add one of --midi PORT, --mtc PORT, --osc, --ableton-osc, --reaper-osc, "
                "--bitwig-osc, --ardour-osc or --link (daw_scripts/README.md says which to use for your DAW)."
            )
        source = chosen[0] if chosen else None
        return cls(
            source=source, address=getattr(args, source) if source else None, link=link,
            link_quantum_beats=getattr(args, "link_quantum", 4.0),
            midi_api=getattr(args, "midi_api", None),
            ableton_reply_port=getattr(args, "ableton_reply_port", P.ABLETON_OSC_REPLY_PORT),
            bitwig_receive_port=getattr(args, "bitwig_receive_port", P.BITWIG_DBM_RECEIVE_PORT),
            ardour_reply_port=getattr(args, "ardour_reply_port", 0),
            latency_ms=getattr(args, "latency_ms", None),
        )
