"""``stembridge listen``: follow the DAW's transport and print it.

Also the shared plumbing for every command that follows a DAW: :func:`add_sync_arguments` adds the
source options (``--midi``, ``--mtc``, ``--osc``, ``--ableton-osc``, ``--reaper-osc``,
``--bitwig-osc``, ``--ardour-osc``, ``--link``, ``--latency-ms``) to any parser;
:meth:`SyncSpec.from_args <bridge.transport.sync_spec.SyncSpec.from_args>` turns them into a
:class:`~bridge.transport.sync_spec.SyncSpec` (the value the app builds directly) and
:func:`open_sync_sources` opens what a SyncSpec names around a :class:`TransportClock`
(:func:`build_sources_from_args` does both).

With ``--json`` one object per line (``TransportState.to_json()`` of ``clock.now()``): every
1/50 s while playing, and at once on every change (start/stop, tempo, meter, a locate or loop jump,
a move while stopped). ``--duration S`` stops after S seconds; Ctrl-C stops cleanly (exit 0).

Run it on its own (before ``stembridge listen`` is wired into the CLI) with
``python -m bridge.transport.listen --ableton-osc --json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from bridge.errors import BridgeError, TransportError
from bridge.transport import osc_protocol as P
from bridge.transport.state import TransportState
from bridge.transport.sync_spec import DEFAULT_ADDRESSES, POSITION_SOURCES, SyncSpec

if TYPE_CHECKING:  # the clock pulls in numpy: not needed to build the CLI parser
    from bridge.transport.clock import TransportClock

log = logging.getLogger(__name__)

__all__ = [
    "OUTPUT_RATE_HZ",
    "add_listen_arguments",
    "add_listen_parser",
    "add_sync_arguments",
    "build_sources_from_args",
    "main",
    "make_clock_from_args",
    "open_sync_sources",
    "run_listen",
    "sync_setup_key",
]

#: JSON lines per second while playing (the issue asks for ≥ 20).
OUTPUT_RATE_HZ = 50.0
#: A printed position further than this from where the last line extrapolates to is "a change".
JUMP_BEATS = 0.05

_POSITION_OPTIONS = POSITION_SOURCES


class _Sink:
    """Adapts a callable to the ``.update(state)`` interface MIDI inputs and Link feed."""

    def __init__(self, fn: Callable[[TransportState], None]) -> None:
        self.update = fn


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the DAW sync source options (shared by ``listen`` and the preview commands)."""
    g = parser.add_argument_group(
        "sync sources", "Pick one source of song position (MIDI clock, MTC or one OSC dialect), "
        "optionally with --link. OSC listens on 127.0.0.1 unless you give another local address."
    )
    g.add_argument("--midi", metavar="PORT", help="MIDI beat clock + Song Position Pointer from this MIDI input "
                   "(a name or part of one; see --list-ports)")
    g.add_argument("--mtc", metavar="PORT", help="MIDI Time Code from this MIDI input")
    g.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"),
                   help="MIDI backend for --midi/--mtc/--list-ports (default: the first that works)")
    g.add_argument("--osc", nargs="?", const=DEFAULT_ADDRESSES["osc"], metavar="[HOST:]PORT",
                   help="our own /stembridge/transport messages (the StemBridge Live script) on this local "
                   f"port (default {P.STEMBRIDGE_OSC_PORT})")
    g.add_argument("--ableton-osc", nargs="?", const=DEFAULT_ADDRESSES["ableton_osc"], metavar="[HOST:]PORT",
                   help="subscribe to AbletonOSC in Live at HOST:PORT (default 127.0.0.1:"
                   f"{P.ABLETON_OSC_LIVE_PORT}); replies arrive on --ableton-reply-port")
    g.add_argument("--ableton-reply-port", type=int, default=P.ABLETON_OSC_REPLY_PORT, metavar="PORT",
                   help=f"local port AbletonOSC replies to (fixed at {P.ABLETON_OSC_REPLY_PORT} in AbletonOSC)")
    g.add_argument("--reaper-osc", nargs="?", const=DEFAULT_ADDRESSES["reaper_osc"], metavar="[HOST:]PORT",
                   help="REAPER's OSC feedback on this local port (REAPER's 'device port'; default "
                   f"{P.REAPER_OSC_SUGGESTED_PORT})")
    g.add_argument("--bitwig-osc", nargs="?", const=DEFAULT_ADDRESSES["bitwig_osc"], metavar="[HOST:]PORT",
                   help="Bitwig's DrivenByMoss OSC feedback on this local port (default "
                   f"{P.BITWIG_DBM_SEND_PORT})")
    g.add_argument("--bitwig-receive-port", type=int, default=P.BITWIG_DBM_RECEIVE_PORT, metavar="PORT",
                   help=f"port DrivenByMoss listens on, for /refresh (default {P.BITWIG_DBM_RECEIVE_PORT})")
    g.add_argument("--ardour-osc", nargs="?", const=DEFAULT_ADDRESSES["ardour_osc"], metavar="HOST:PORT",
                   help=f"register with Ardour's OSC surface at HOST:PORT (default 127.0.0.1:{P.ARDOUR_OSC_PORT})")
    g.add_argument("--ardour-reply-port", type=int, default=0, metavar="PORT",
                   help="local port for Ardour's feedback when its OSC reply port mode is Manual "
                   "(default 0: any free port, for Ardour's Auto mode)")
    g.add_argument("--link", action="store_true",
                   help="join the Ableton Link session (tempo and phase; needs pip install \"stembridge[link]\"). "
                   "Alone, bar 1 is where the session starts playing (enable Start Stop Sync in the DAW)")
    g.add_argument("--link-quantum", type=float, default=4.0, metavar="BEATS",
                   help="Link quantum in quarter notes (default 4 = one 4/4 bar)")
    g.add_argument("--latency-ms", type=float, default=None, metavar="MS",
                   help="show a position this many ms later (positive) or earlier (negative) than the DAW "
                   "reports, to line up with what you hear (default: the offset calibrated in the app for "
                   "this sync source, else 0)")


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    add_sync_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: t, source, playing, tempo_bpm, position_beats, "
                        "position_seconds, bar, beat, time_signature")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--list-ports", action="store_true", help="list MIDI input ports and exit")


def add_listen_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``listen`` to the stembridge CLI: ``add_listen_parser(sub)`` in ``build_parser()``."""
    p = subparsers.add_parser(
        "listen", help="follow the DAW's transport (MIDI clock, MTC, OSC, Ableton Link) and print it",
        description="Follow the DAW's transport and print where it is. See daw_scripts/README.md for "
        "what to enable in each DAW.",
    )
    add_listen_arguments(p)
    p.set_defaults(func=run_listen)
    return p


def sync_setup_key(args: argparse.Namespace) -> str:
    """The calibration key of the sync setup these options name (bridge.transport.calibration)."""
    from bridge.transport.calibration import setup_key

    chosen = _chosen_position_options(args)
    option = "--" + chosen[0].replace("_", "-") if len(chosen) == 1 else None
    return setup_key(option, link=bool(getattr(args, "link", False)))


def make_clock_from_args(args: argparse.Namespace) -> TransportClock:
    """A TransportClock with the user's latency offset (``--latency-ms``, else the one calibrated for
    this sync setup, else 0); OSC sources go stale after 1 s of silence."""
    from bridge.transport.calibration import latency_for
    from bridge.transport.clock import DEFAULT_STALE_AFTER_S, TransportClock

    latency_ms = getattr(args, "latency_ms", None)
    if latency_ms is None:
        latency_ms = latency_for(sync_setup_key(args)) or 0.0
    try:
        return TransportClock(latency_ms=latency_ms, stale_after_s={**DEFAULT_STALE_AFTER_S, **P.OSC_STALE_AFTER_S})
    except ValueError as e:
        raise TransportError(f"--latency-ms: {e}") from None


def _chosen_position_options(args: argparse.Namespace) -> list[str]:
    return [name for name in _POSITION_OPTIONS if getattr(args, name, None) is not None]


def _osc_listener(dialect_name: str, sink: Callable[[TransportState], None], *, bind: tuple[str, int],
                  daw: tuple[str, int] | None, resubscribe_after_s: float | None = P.RESUBSCRIBE_AFTER_SILENCE_S,
                  **dialect_options: object):
    from bridge.transport.osc_dialects import make_dialect
    from bridge.transport.osc_io import OscListener

    return OscListener(make_dialect(dialect_name, **dialect_options), sink, listen_host=bind[0],
                       listen_port=bind[1], daw_address=daw, resubscribe_after_s=resubscribe_after_s)


def _midi_input(kind: str, port: str, sink: _Sink, *, api: str | None):
    try:
        from bridge.transport import midi_io
    except ImportError as e:
        raise TransportError(f"MIDI input is not available in this installation ({e}).") from None
    if kind == "midi":
        from bridge.transport.midi_clock import MidiClockParser

        parser = MidiClockParser()
    else:
        from bridge.transport.mtc import MtcParser

        parser = MtcParser()
    return midi_io.MidiInput(port, parser, sink, api=api)  # type: ignore[arg-type]  # duck-typed .update


@contextmanager
def build_sources_from_args(
    args: argparse.Namespace,
    clock: TransportClock,
    *,
    on_state: Callable[[TransportState], None] | None = None,
) -> Iterator[list[object]]:
    """Open the sources named by :func:`add_sync_arguments` options (through
    :meth:`SyncSpec.from_args` and :func:`open_sync_sources`), feeding ``clock``."""
    with open_sync_sources(SyncSpec.from_args(args), clock, on_state=on_state) as sources:
        yield sources


@contextmanager
def open_sync_sources(
    spec: SyncSpec,
    clock: TransportClock,
    *,
    on_state: Callable[[TransportState], None] | None = None,
) -> Iterator[list[object]]:
    """Open the sources a :class:`SyncSpec` names, feeding ``clock``.

    Yields the started sources (OscListener, MidiInput, LinkSource objects); closes them all on
    exit, also on Ctrl-C. ``on_state`` is called after every ``clock.update`` (from the source
    threads). Raises TransportError (bad address, port busy, no MIDI backend) or MissingDependency
    (Link without aalink) before anything is left open.
    """
    from bridge.transport.osc_io import local_address_for, parse_host_port

    def to_clock(state: TransportState) -> None:
        clock.update(state)
        if on_state is not None:
            on_state(state)

    source, address, option = spec.source, spec.address, spec.option
    with ExitStack() as stack:
        sources: list[object] = []
        link = None
        position_sink: Callable[[TransportState], None] = to_clock
        if spec.link:
            from bridge.transport.link import LinkSource

            link = LinkSource(to_clock, quantum_beats=spec.link_quantum_beats)
            position_sink = link.update
            stack.enter_context(link)  # first: positions from the other source need its timeline
            sources.append(link)

        def listen(name: str, bind: tuple[str, int], daw: tuple[str, int] | None, **kw) -> None:
            sources.append(stack.enter_context(_osc_listener(name, position_sink, bind=bind, daw=daw, **kw)))

        if source == "osc":
            listen("stembridge", parse_host_port(address, option=option), None)
        elif source == "ableton_osc":
            live = parse_host_port(address, default_port=P.ABLETON_OSC_LIVE_PORT, option=option)
            listen("ableton", (local_address_for(live[0]), spec.ableton_reply_port), live)
        elif source == "reaper_osc":
            listen("reaper", parse_host_port(address, option=option), None)
        elif source == "bitwig_osc":
            bind = parse_host_port(address, option=option)
            # DrivenByMoss only sends what changes: ask for everything once at start (no periodic
            # refresh: a full dump includes every track and clip).
            listen("bitwig", bind, ("127.0.0.1" if bind[0] in ("0.0.0.0", "") else bind[0], spec.bitwig_receive_port),
                   resubscribe_after_s=None)
        elif source == "ardour_osc":
            ardour = parse_host_port(address, default_port=P.ARDOUR_OSC_PORT, option=option)
            reply_port = spec.ardour_reply_port
            listen("ardour", (local_address_for(ardour[0]), reply_port), ardour, reply_port=reply_port)
        elif source in ("midi", "mtc"):
            sources.append(stack.enter_context(
                _midi_input(source, address, _Sink(position_sink), api=spec.midi_api)))
        yield sources


# --- output --------------------------------------------------------------------------------------

def _is_change(state: TransportState, last: TransportState | None) -> bool:
    """Did something happen that a consumer must hear about at once (not just time passing)?"""
    if last is None:
        return True
    if (state.playing != last.playing or state.source != last.source
            or state.time_signature != last.time_signature or abs(state.tempo_bpm - last.tempo_bpm) > 0.005):
        return True
    dt = state.received_at - last.received_at if state.playing else 0.0
    expected = last.position_beats + dt * last.tempo_bpm / 60.0
    return abs(state.position_beats - expected) > (JUMP_BEATS if state.playing else 1e-6)


def _human_line(s: TransportState) -> str:
    mark = "▶" if s.playing else "■"
    num, den = s.time_signature
    return (f"{mark} bar {s.bar:>4} beat {s.beat:5.2f}  {s.tempo_bpm:7.2f} BPM {num}/{den}  "
            f"{s.position_seconds:9.3f} s  [{s.source}]")


def _list_ports(api: str | None) -> int:
    try:
        from bridge.transport.midi_io import list_midi_ports
    except ImportError as e:
        raise TransportError(f"MIDI input is not available in this installation ({e}).") from None
    ports = list_midi_ports(api=api)
    names = list(ports.values() if isinstance(ports, dict) else ports)
    if not names:
        print("no MIDI input ports found", file=sys.stderr)
    for name in names:
        print(name)
    return 0


def run_listen(args: argparse.Namespace) -> int:
    """The ``listen`` command. Returns the exit status (0, also after Ctrl-C)."""
    if getattr(args, "list_ports", False):
        return _list_ports(getattr(args, "midi_api", None))
    duration = getattr(args, "duration", None)
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise TransportError(f"--duration {duration!r} must be a number of seconds ≥ 0")
    as_json = getattr(args, "json", False)
    clock = make_clock_from_args(args)
    woken = threading.Event()
    out = sys.stdout
    tty = (not as_json) and out.isatty()
    period_s = 1.0 / OUTPUT_RATE_HZ
    human_period_s = 0.25  # human-readable lines: a few per second is plenty
    # Ctrl-C sets a flag the loop checks, instead of a KeyboardInterrupt raised at whatever bytecode
    # the main thread is on: raised inside the clock's lock (or a `with` block's entry), it left the
    # lock held, the OSC thread blocked in clock.update, and stopping the listener waited forever
    # (benchmarks/reliability.py: SIGINT after a 60 s OSC flood, no exit within 30 s).
    stop = threading.Event()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        def _on_sigint(signum, frame) -> None:
            stop.set()
            woken.set()
            signal.signal(signal.SIGINT, previous_handler)  # a second Ctrl-C interrupts at once

        previous_handler = signal.signal(signal.SIGINT, _on_sigint)
    try:
        with build_sources_from_args(args, clock, on_state=lambda s: woken.set()) as sources:
            print(f"stembridge listen: following {', '.join(_describe(s) for s in sources)}"
                  + (" (Ctrl-C to stop)" if duration is None else f" for {duration:g} s"), file=sys.stderr)
            start = time.monotonic()
            deadline = None if duration is None else start + duration
            last: TransportState | None = None
            next_tick = start
            while not stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait_s = next_tick - now
                if deadline is not None:
                    wait_s = min(wait_s, deadline - now)
                if wait_s > 0:
                    woken.wait(wait_s)
                woken.clear()
                if stop.is_set():
                    break
                now = time.monotonic()
                state = clock.now(now)
                periodic = now >= next_tick
                if periodic:
                    next_tick += period_s
                    if next_tick <= now:  # we fell behind (a slow terminal): don't burst to catch up
                        next_tick = now + period_s
                change = _is_change(state, last)
                if as_json:
                    if change or (periodic and state.playing):
                        out.write(json.dumps(state.to_json()) + "\n")
                        out.flush()
                        last = state
                elif change or (state.playing and (last is None or now - last.received_at >= human_period_s)):
                    out.write(("\r" + _human_line(state) + "\x1b[K") if tty else _human_line(state) + "\n")
                    out.flush()
                    last = state
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        if previous_handler is not None and signal.getsignal(signal.SIGINT) is not previous_handler:
            signal.signal(signal.SIGINT, previous_handler)
    if tty:
        out.write("\n")
    return 0


def _describe(source: object) -> str:
    dialect = getattr(source, "dialect", None)
    if dialect is not None:
        host, port = source.address  # type: ignore[attr-defined]
        daw = getattr(source, "daw_address", None)
        return f"{dialect.source} on {host}:{port}" + (f" (DAW at {daw[0]}:{daw[1]})" if daw else "")
    port_name = getattr(source, "port_name", None)
    if port_name is not None:
        kind = "MTC" if type(getattr(source, "parser", None)).__name__ == "MtcParser" else "MIDI clock"
        return f"{kind} from {port_name!r}"
    if hasattr(source, "num_peers"):
        return "Ableton Link"
    return type(source).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridge.transport.listen …``: the listen command without the rest of the CLI."""
    parser = argparse.ArgumentParser(
        prog="stembridge listen",
        description="Follow the DAW's transport (MIDI clock, MTC, OSC, Ableton Link) and print it.",
    )
    add_listen_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_listen(args)
    except BridgeError as e:
        print(f"stembridge: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
