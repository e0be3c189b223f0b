"""MIDI ports: the only module that opens them (python-rtmidi, used directly).

Why not mido's port API: its rtmidi backend drops the driver's timestamps, and MIDI clock timing
is only as good as its timestamps. rtmidi hands every message with the seconds since the previous
one as the driver stamped them; :class:`MidiInput` accumulates those deltas onto a monotonic base
(``time.monotonic`` at the first message), so parsers see driver timing in the clock the rest of
the app reads. Timing messages are ignored by rtmidi by default: the input turns them (and SysEx,
for MTC full frames) back on.

Backends: CoreMIDI (macOS) and Windows MM are built in. On Linux rtmidi needs the ALSA sequencer
(``/dev/snd/seq``) or a running JACK server; containers and some minimal systems have neither,
in which case a :class:`~bridge.errors.TransportError` says what to install.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bridge.errors import MissingDependency, TransportError
from bridge.transport.clock import TransportClock
from bridge.transport.state import TransportState

#: API names accepted by ``api=`` (besides None = every compiled API in rtmidi's order).
API_NAMES = ("alsa", "jack", "coremidi", "winmm")

# A JACK client library started by us must not spawn a JACK server as a side effect (libjack does
# that by default when jackd is installed): we only want one the user runs.
os.environ.setdefault("JACK_NO_START_SERVER", "1")


class Parser(Protocol):
    def feed(self, message_bytes: bytes | Sequence[int], timestamp_s: float) -> TransportState | None: ...


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError as e:  # the wheel bundles no backend libraries on some platforms
        raise MissingDependency("python-rtmidi", feature="MIDI clock / MTC sync") from e
    return rtmidi


def _api_ids(api: str | None) -> list[int]:
    rtmidi = _rtmidi()
    names = {
        "alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM,
    }
    compiled = [a for a in rtmidi.get_compiled_api() if a != getattr(rtmidi, "API_RTMIDI_DUMMY", -1)]
    if api is None:
        return compiled
    key = api.lower()
    if key not in names:
        raise TransportError(f"MIDI api {api!r} is unknown; use one of {', '.join(API_NAMES)} (or leave it out).")
    if names[key] not in compiled:
        have = ", ".join(rtmidi.get_api_name(a) for a in compiled) or "none"
        raise TransportError(
            f"MIDI api {api!r} is not compiled into this python-rtmidi (it has: {have}). "
            "Use one of those, or leave the api out."
        )
    return [names[key]]


def _install_hint() -> str:
    if sys.platform.startswith("linux"):
        return (
            "On Linux, load the ALSA sequencer (`sudo modprobe snd-seq`, needs /dev/snd/seq) or "
            "install and start JACK: `sudo apt install jackd2`, then `jackd -d alsa` (or "
            "`jackd -d dummy -r 48000` with no sound card) and pass --midi-api jack."
        )
    if sys.platform == "darwin":
        return "On macOS CoreMIDI is built in: check Audio MIDI Setup (enable the IAC Driver for Logic)."
    return "On Windows the Windows MM backend is built in: check the device is connected and not in use."


def _open_client(kind: str, api_id: int, client_name: str) -> Any:
    rtmidi = _rtmidi()
    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(api_id, client_name)


def _clients(kind: str, api: str | None, client_name: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """Open a client on every usable API; returns (api_id, client) pairs and the failures."""
    rtmidi = _rtmidi()
    clients: list[tuple[int, Any]] = []
    failures: list[str] = []
    for api_id in _api_ids(api):
        try:
            clients.append((api_id, _open_client(kind, api_id, client_name)))
        except Exception as e:  # rtmidi raises SystemError/RtMidiError subclasses of OSError
            failures.append(f"{rtmidi.get_api_display_name(api_id)}: {e}")
    return clients, failures


def _no_backend(failures: list[str]) -> TransportError:
    why = "; ".join(failures) if failures else "python-rtmidi was built without any MIDI API"
    return TransportError(f"No MIDI backend is available ({why}). {_install_hint()}")


def list_midi_ports(*, api: str | None = None, output: bool = False) -> list[str]:
    """Names of the MIDI input (or output) ports on every usable backend (or on ``api``).

    Raises TransportError when no backend can be opened, saying which one to install.
    """
    clients, failures = _clients("out" if output else "in", api, "stembridge-list")
    if not clients:
        raise _no_backend(failures)
    names: list[str] = []
    for _, client in clients:
        try:
            names.extend(client.get_ports())
        finally:
            with contextlib.suppress(Exception):
                client.delete()
    return names


def _find_port(client: Any, port: str | int) -> tuple[int, str] | None:
    ports = list(client.get_ports())
    if isinstance(port, int):
        return (port, ports[port]) if 0 <= port < len(ports) else None
    if port in ports:
        return ports.index(port), port
    # DAW port names carry client prefixes and ALSA suffixes ("Logic Pro Virtual Out 128:0"):
    # accept a unique case-insensitive substring
    hits = [(i, p) for i, p in enumerate(ports) if port.lower() in p.lower()]
    return hits[0] if len(hits) == 1 else None


def _open_port(kind: str, port: str | int, api: str | None, client_name: str) -> tuple[Any, int, str]:
    clients, failures = _clients(kind, api, client_name)
    if not clients:
        raise _no_backend(failures)
    seen: list[str] = []
    chosen = None
    for api_id, client in clients:
        found = _find_port(client, port) if chosen is None else None
        if found is not None:
            chosen = (client, api_id, found)
        else:
            seen.extend(client.get_ports())
            with contextlib.suppress(Exception):
                client.delete()
    if chosen is None:
        what = "input" if kind == "in" else "output"
        raise TransportError(
            f"MIDI {what} port {port!r} was not found (available: {seen or 'none'}). Check that the "
            "DAW sends MIDI clock/MTC to that port (Logic: Project Settings ▸ Synchronization ▸ "
            "MIDI, destination 'Logic Pro Virtual Out' or the IAC bus) and list ports with "
            "`stembridge listen --list-ports`."
        )
    client, api_id, (index, name) = chosen
    try:
        client.open_port(index, name=f"{client_name} in" if kind == "in" else f"{client_name} out")
    except Exception as e:
        client.delete()
        raise TransportError(f"MIDI port {name!r} could not be opened ({e}); is another program holding it?") from None
    return client, api_id, name


def jack_cycle_seconds(client_name: str = "stembridge-probe") -> float | None:
    """The running JACK server's period (buffer size / sample rate, seconds), or None.

    Asked through libjack directly (ctypes; rtmidi does not expose its client): a short-lived
    client that never starts a server.
    """
    import ctypes
    import ctypes.util

    lib_name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        jack = ctypes.CDLL(lib_name)
    except OSError:
        return None
    jack.jack_client_open.restype = ctypes.c_void_p
    jack.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    jack.jack_get_buffer_size.restype = ctypes.c_uint32
    jack.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
    jack.jack_get_sample_rate.restype = ctypes.c_uint32
    jack.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
    jack.jack_client_close.argtypes = [ctypes.c_void_p]
    status = ctypes.c_int(0)
    jack_no_start_server = 0x01
    client = jack.jack_client_open(client_name.encode(), jack_no_start_server, ctypes.byref(status))
    if not client:
        return None
    try:
        frames, rate = jack.jack_get_buffer_size(client), jack.jack_get_sample_rate(client)
    finally:
        jack.jack_client_close(client)
    return frames / rate if frames and rate else None


class MidiCallback:
    """rtmidi's input callback: driver deltas → monotonic timestamps → parser → clock.

    Kept apart from the port so it can be tested without one. ``max_lag_s``: the accumulated
    driver time may trail the callback's monotonic time by at most this much (a stalled Python
    thread delivers late, with correct deltas); beyond it (driver clock drift) it is re-anchored.
    It never runs ahead of the callback time. ``offset_s`` is added to every stamp (see
    :class:`MidiInput`'s ``stamp_offset_s``). Nothing raised inside escapes (a malformed message
    must not kill the MIDI thread): ``errors`` counts it and ``last_error`` says what it was.
    """

    def __init__(
        self,
        parser: Parser,
        clock: TransportClock,
        *,
        on_state: Callable[[TransportState], None] | None = None,
        max_lag_s: float = 0.5,
        offset_s: float = 0.0,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parser = parser
        self.clock = clock
        self.on_state = on_state
        self.max_lag_s = max_lag_s
        self.offset_s = float(offset_s)
        self._time_fn = time_fn
        self._t: float | None = None
        self._lock = threading.Lock()
        self.messages = 0
        self.errors = 0
        self.last_error: str | None = None

    def timestamp(self, delta_s: float) -> float:
        """Monotonic time of a message whose driver delta to the previous one is ``delta_s``."""
        now = self._time_fn()
        if self._t is None or not (delta_s >= 0.0):  # first message, or a NaN/negative delta
            self._t = now
            return now
        t = self._t + delta_s
        if t > now:
            t = now  # a message cannot be stamped after it was delivered
        elif now - t > self.max_lag_s:
            t = now - self.max_lag_s
        self._t = t
        return t

    def __call__(self, event: Any, data: Any = None) -> None:
        try:
            message, delta = event
            with self._lock:
                t = self.timestamp(float(delta)) + self.offset_s
                state = self.parser.feed(message, t)
                self.messages += 1
            if state is not None:
                self.clock.update(state)
                if self.on_state is not None:
                    self.on_state(state)
        except Exception as e:  # noqa: BLE001 - the MIDI thread must survive anything
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"


class MidiInput:
    """An open MIDI input feeding a parser and a TransportClock from the MIDI thread.

    rtmidi's callback thread on ALSA, CoreMIDI and Windows MM; on JACK a small thread of ours
    drains rtmidi's queue every millisecond (see ``__init__``). Either way the timestamps are the
    driver's.

    Parameters
    ----------
    port : str or int
        Port name (exact, or a unique substring) or index as :func:`list_midi_ports` lists it.
    parser : MidiClockParser, MtcParser or anything with ``feed(bytes, timestamp_s)``
    clock : TransportClock
        Updated with every state the parser returns.
    api : "alsa", "jack", "coremidi", "winmm" or None (try every compiled one)
    on_state : callable, optional
        Called with each new state, on the callback thread (keep it short; never touch Qt).
    max_lag_s : float
        See :class:`MidiCallback`.
    stamp_offset_s : float or None
        Added to every timestamp. None (default): 0, except on JACK, where rtmidi stamps each
        message with the time of the process cycle that delivers it (``jack_get_time()`` in its
        process callback; the event's frame offset is dropped). A message handed to JACK between
        two cycles — by rtmidi, a2jmidid or any client that queues for the next cycle — waits for
        that next cycle, so its stamp is late by 0…1 period, half a period on average: that was
        the constant MIDI clock lag (−2.7 ms at 256 frames / 48 kHz). The default there is
        −period/2. A JACK-native DAW that places its clocks at frame offsets inside the cycle
        is stamped early by as much instead: pass ``+period/2`` for it (see
        :func:`jack_cycle_seconds`).

    Raises TransportError when no backend exists (saying which to install) or the port is absent.
    """

    def __init__(
        self,
        port: str | int,
        parser: Parser,
        clock: TransportClock,
        *,
        api: str | None = None,
        client_name: str = "stembridge",
        on_state: Callable[[TransportState], None] | None = None,
        max_lag_s: float = 0.5,
        stamp_offset_s: float | None = None,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = MidiCallback(parser, clock, on_state=on_state, max_lag_s=max_lag_s, time_fn=time_fn)
        self._midi, self._api_id, self.port_name = _open_port("in", port, api, client_name)
        if stamp_offset_s is None:
            stamp_offset_s = 0.0
            if self._api_id == _rtmidi().API_UNIX_JACK:
                period = jack_cycle_seconds(f"{client_name}-period")
                stamp_offset_s = -0.5 * period if period is not None else 0.0
        self.callback.offset_s = float(stamp_offset_s)
        self._midi.ignore_types(sysex=False, timing=False, active_sense=True)
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        if self._api_id == _rtmidi().API_UNIX_JACK:
            # rtmidi calls a JACK input callback from JACK's real-time process thread, which would
            # then wait for the GIL; a late process cycle is an xrun and JACK drops MIDI events.
            # Let rtmidi queue the messages (with their timestamps) and drain them from our thread.
            self._poller = threading.Thread(target=self._poll, name=f"midi-in {self.port_name}", daemon=True)
            self._poller.start()
        else:
            self._midi.set_callback(self.callback)

    def _poll(self) -> None:
        midi = self._midi
        while not self._stop.is_set():
            try:
                event = midi.get_message()
            except Exception as e:  # noqa: BLE001 - port closed under us, or a backend error
                self.callback.errors += 1
                self.callback.last_error = f"{type(e).__name__}: {e}"
                return
            if event is None:
                self._stop.wait(0.001)
            else:
                self.callback(event)

    @property
    def api(self) -> str:
        return _rtmidi().get_api_name(self._api_id)

    @property
    def parser(self) -> Parser:
        return self.callback.parser

    @property
    def clock(self) -> TransportClock:
        return self.callback.clock

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=1.0)
        midi, self._midi = self._midi, None
        if midi is not None:
            with contextlib.suppress(Exception):
                midi.cancel_callback()
            with contextlib.suppress(Exception):
                midi.close_port()
            with contextlib.suppress(Exception):
                midi.delete()

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidiOutput:
    """Sends raw MIDI bytes: to an existing port, or from a new virtual port others can open.

    Used by tests and DAW simulations (``stembridge`` itself only listens). ``virtual_name``
    creates a virtual output port (ALSA, JACK, CoreMIDI; not Windows MM).
    """

    def __init__(
        self,
        port: str | int | None = None,
        *,
        api: str | None = None,
        virtual_name: str | None = None,
        client_name: str = "stembridge-out",
    ) -> None:
        if (port is None) == (virtual_name is None):
            raise TransportError("MidiOutput needs either a port to open or a virtual_name to create, not both.")
        if virtual_name is not None:
            clients, failures = _clients("out", api, client_name)
            if not clients:
                raise _no_backend(failures)
            (self._api_id, self._midi), rest = clients[0], clients[1:]
            for _, c in rest:
                with contextlib.suppress(Exception):
                    c.delete()
            try:
                self._midi.open_virtual_port(virtual_name)
            except Exception as e:
                self._midi.delete()
                raise TransportError(
                    f"could not create virtual MIDI port {virtual_name!r} ({e}); Windows MM has no "
                    "virtual ports: use loopMIDI and open it by name."
                ) from None
            self.port_name = virtual_name
        else:
            self._midi, self._api_id, self.port_name = _open_port("out", port, api, client_name)  # type: ignore[arg-type]

    def send(self, message: bytes | Sequence[int]) -> None:
        self._midi.send_message(list(message))

    def close(self) -> None:
        midi, self._midi = self._midi, None
        if midi is not None:
            with contextlib.suppress(Exception):
                midi.close_port()
            with contextlib.suppress(Exception):
                midi.delete()

    def __enter__(self) -> MidiOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
