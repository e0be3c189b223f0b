"""The only place that opens OSC sockets: one UDP listener per DAW connection, in its own thread.

:class:`OscListener` binds a python-osc ``BlockingOSCUDPServer`` (one thread handles datagrams in
arrival order — the threading variant would spawn a thread per datagram and reorder positions),
timestamps every datagram with ``time.monotonic()`` as it is read, decodes it with python-osc,
feeds each message to a pure dialect parser (:mod:`bridge.transport.osc_dialects`) and hands every
resulting :class:`~bridge.transport.state.TransportState` to ``sink`` (usually
``TransportClock.update``).

Subscriptions (AbletonOSC ``start_listen``, Ardour ``/set_surface``, DrivenByMoss ``/refresh``) are
sent from the listening socket itself, so a DAW that answers "to the sender's port" (Ardour's
default) reaches us. They are re-sent when the DAW asks (``/live/startup``) and when it has been
silent for ``resubscribe_after_s`` (it restarted, or was not running yet).

Safety: binds 127.0.0.1 unless told otherwise (OSC has no authentication); asks for a large
SO_RCVBUF because DAWs send feedback in unpaced bursts; malformed datagrams (checked byte for byte
by :func:`is_well_formed_osc` before python-osc sees them) are dropped and logged once per
listener, never raised in the server thread.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from bridge.errors import TransportError
from bridge.transport import osc_protocol as P
from bridge.transport.osc_dialects import OscDialect, make_dialect
from bridge.transport.state import TransportState

if TYPE_CHECKING:
    from bridge.transport.markers import DawMarker

log = logging.getLogger(__name__)

__all__ = ["MarkerRequest", "OscListener", "build_osc_message", "fetch_daw_markers", "is_well_formed_osc", "local_address_for",
           "parse_host_port"]


def build_osc_message(address: str, args: Sequence[object] = ()) -> bytes:
    """One OSC message datagram (python-osc's builder; types inferred from the Python values)."""
    builder = OscMessageBuilder(address=address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


def parse_host_port(text: str, *, default_host: str = P.DEFAULT_LISTEN_HOST,
                    default_port: int | None = None, option: str = "--osc") -> tuple[str, int]:
    """``"9000"``, ``"host:9000"``, ``"[::1]:9000"`` or ``"host"`` (with a default port) → (host, port)."""
    raw = text.strip()
    host, port_text = default_host, raw
    if raw.startswith("["):  # [IPv6]:port
        end = raw.find("]")
        host, port_text = raw[1:end], raw[end + 2:] if end > 0 else ""
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif not raw.isdigit() and raw.count(":") == 0:
        host, port_text = raw, ""
    if port_text == "" and default_port is not None:
        port_text = str(default_port)
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or not host:
        raise TransportError(
            f"{option} {text!r} is not a valid [HOST:]PORT: give a UDP port number 1-65535, optionally "
            f"after a host, e.g. {option} 127.0.0.1:{default_port or 9000}"
        )
    return host, port


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def local_address_for(remote_host: str) -> str:
    """The local interface address that routes to ``remote_host`` (loopback for loopback).

    Used to bind a listener for a DAW on another machine to the one interface that reaches it,
    rather than 0.0.0.0. A UDP ``connect`` only consults the routing table: nothing is sent.
    """
    if _is_loopback(remote_host):
        return P.DEFAULT_LISTEN_HOST
    try:
        info = socket.getaddrinfo(remote_host, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as probe:
            probe.connect(info[4])
            return probe.getsockname()[0]
    except OSError as e:
        raise TransportError(
            f"cannot find a route to the DAW host {remote_host!r} ({e.strerror or e}). Check the address, "
            "or run the DAW on this machine and use 127.0.0.1."
        ) from None


def _string_end(data: bytes, start: int) -> int:
    """Index after the NUL-terminated, 4-byte-padded OSC string at ``start``; -1 if unterminated."""
    nul = data.find(b"\0", start)
    return -1 if nul < 0 else (nul + 4) & ~3


# Type tags python-osc decodes, with their payload sizes (None: a string; "b": a blob).
_TAG_SIZES: dict[int, int | str | None] = {
    ord("i"): 4, ord("f"): 4, ord("r"): 4, ord("m"): 4, ord("h"): 8, ord("d"): 8, ord("t"): 8,
    ord("s"): None, ord("b"): "b", ord("T"): 0, ord("F"): 0, ord("N"): 0, ord("["): 0, ord("]"): 0,
}


def is_well_formed_osc(data: bytes, *, _depth: int = 0) -> bool:
    """True when ``data`` is exactly one OSC 1.0 message or bundle, every byte accounted for.

    python-osc is lenient where a transport source must not be: it zero-fills numbers cut short
    (a truncated tempo reads as a plausible 32 BPM), skips unknown type tags (shifting the
    arguments that follow) and accepts bundle elements whose size field lies. Such datagrams are
    dropped here before python-osc decodes them.
    """
    n = len(data)
    if n == 0 or n % 4:
        return False
    if data.startswith(b"#bundle\0"):
        if n < 16 or _depth > 8:
            return False
        i = 16
        while i < n:
            if i + 4 > n:
                return False
            size = int.from_bytes(data[i:i + 4], "big", signed=True)
            i += 4
            if size <= 0 or size % 4 or i + size > n or not is_well_formed_osc(data[i:i + size], _depth=_depth + 1):
                return False
            i += size
        return True
    if data[:1] != b"/":
        return False
    i = _string_end(data, 0)
    if i < 0 or i > n:
        return False
    if i == n:
        return True  # no type-tag string: allowed by OSC 1.0, no arguments
    if data[i:i + 1] != b",":
        return False
    k = _string_end(data, i)
    if k < 0 or k > n:
        return False
    depth = 0
    for tag in data[i + 1:data.index(b"\0", i)]:
        size = _TAG_SIZES.get(tag, -1)
        if size == -1:
            return False
        depth += (tag == ord("[")) - (tag == ord("]"))
        if depth < 0:
            return False
        if size is None:
            k = _string_end(data, k)
            if k < 0:
                return False
        elif size == "b":
            if k + 4 > n:
                return False
            length = int.from_bytes(data[k:k + 4], "big", signed=True)
            if length < 0:
                return False
            k += 4 + ((length + 3) & ~3)
        else:
            k += size  # type: ignore[operator]
        if k > n:
            return False
    return k == n and depth == 0


#: At most this many queued datagrams are drained into one batch (bounds one pass of the loop).
MAX_BATCH_DATAGRAMS = 4096
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

class _Server(BlockingOSCUDPServer):
    """python-osc's blocking UDP server with our bind options and our own datagram handling."""

    max_packet_size = P.OSC_MAX_DATAGRAM_BYTES
    allow_reuse_address = False  # a busy port must fail loudly, not share the datagrams

    def __init__(self, address: tuple[str, int], listener: OscListener) -> None:
        self.listener = listener
        super().__init__(address, Dispatcher(), bind_and_activate=True)

    def server_bind(self) -> None:
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.listener.receive_buffer_bytes)
        except OSError as e:  # some platforms cap or refuse; the default still works, just drops more
            log.debug("could not enlarge SO_RCVBUF: %s", e)
        if hasattr(socket, "SIO_UDP_CONNRESET"):  # Windows: an ICMP "port unreachable" would reset recv
            try:
                self.socket.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]
            except OSError:
                pass
        super().server_bind()

    def verify_request(self, request, client_address) -> bool:  # type: ignore[override]
        return True  # every datagram goes to _handle_datagram, which counts what is not OSC

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        # Bypass python-osc's dispatcher: it lets UnicodeDecodeError escape on a bad address and
        # sleeps until a bundle's future time tag (blocking this thread), both driven by the sender.
        # Drain what else is queued and hand it over as one batch: under a flood, a position that a
        # newer one has replaced is worthless, and serving the queue strictly first-in first-out fell
        # a second behind the DAW on a busy machine (issue 17).
        batch = [(request[0], client_address)]
        sock, size = self.socket, self.max_packet_size
        try:
            if _DONTWAIT:  # one non-blocking read per datagram, no select() call before each
                while len(batch) < MAX_BATCH_DATAGRAMS:
                    batch.append(sock.recvfrom(size, _DONTWAIT))
            else:  # Windows has no MSG_DONTWAIT
                while len(batch) < MAX_BATCH_DATAGRAMS and select.select([sock], [], [], 0.0)[0]:
                    batch.append(sock.recvfrom(size))
        except (OSError, ValueError):  # BlockingIOError: drained
            pass
        self.listener._handle_batch(batch)

    def service_actions(self) -> None:
        self.listener._service()

    def handle_error(self, request, client_address) -> None:  # pragma: no cover - defence in depth
        self.listener._note_malformed(client_address, "handler error")


class OscListener:
    """Listen for one DAW's OSC feedback and turn it into TransportStates.

    Parameters
    ----------
    dialect : OscDialect
        The parser for this DAW (``osc_dialects.make_dialect("ableton")`` …).
    sink : callable(TransportState)
        Called in the listener thread for every new state (e.g. ``clock.update``). Must be quick.
    listen_host, listen_port : str, int
        Where to bind. Port 0 picks a free port (see :attr:`address`).
    daw_address : (host, port), optional
        Where the DAW listens; subscriptions from ``dialect.subscriptions()`` are sent there.
    resubscribe_after_s : float or None
        Re-send the subscriptions after this much silence; None: only at start and on request.
    receive_buffer_bytes : int
        SO_RCVBUF asked for (the kernel may cap it; :attr:`receive_buffer_bytes_granted` says).
    time_fn : callable
        Monotonic clock for arrival timestamps (tests may pass a fake).

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        dialect: OscDialect,
        sink: Callable[[TransportState], None],
        *,
        listen_host: str = P.DEFAULT_LISTEN_HOST,
        listen_port: int,
        daw_address: tuple[str, int] | None = None,
        resubscribe_after_s: float | None = P.RESUBSCRIBE_AFTER_SILENCE_S,
        receive_buffer_bytes: int = P.OSC_RECEIVE_BUFFER_BYTES,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dialect = dialect
        self.sink = sink
        self.listen_host = listen_host
        self.listen_port = int(listen_port)
        self.daw_address = daw_address
        self.resubscribe_after_s = resubscribe_after_s
        self.receive_buffer_bytes = int(receive_buffer_bytes)
        self.receive_buffer_bytes_granted: int | None = None
        self.time_fn = time_fn
        self.datagrams = 0
        self.coalesced = 0  # datagrams that arrived behind another in one drained batch
        self.malformed = 0
        self.states = 0
        self.subscriptions_sent = 0
        self.last_heard_at: float | None = None
        self._last_subscribed_at = -float("inf")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sink_errors = 0

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (port 0 resolved)."""
        if self._server is None:
            return self.listen_host, self.listen_port
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> OscListener:
        if self._server is not None:
            return self
        try:
            self._server = _Server((self.listen_host, self.listen_port), self)
        except OSError as e:
            raise TransportError(
                f"cannot listen for OSC on {self.listen_host}:{self.listen_port} ({e.strerror or e}). "
                "Another program (or another stembridge) may be using that port: close it, or choose a "
                "different port in the DAW and on the command line."
            ) from None
        try:
            self.receive_buffer_bytes_granted = self._server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            self.receive_buffer_bytes_granted = None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"osc-{self.dialect.source}-{self.address[1]}", daemon=True,
        )
        self._thread.start()
        log.info("listening for %s on %s:%d (SO_RCVBUF %s)", self.dialect.source, *self.address,
                 self.receive_buffer_bytes_granted)
        if not _is_loopback(self.listen_host):
            # OSC has no authentication: anyone who can reach this address can move the transport.
            log.warning("OSC for %s listens on %s, reachable from other machines (OSC has no "
                        "authentication); use 127.0.0.1 unless the DAW runs on another computer",
                        self.dialect.source, self.listen_host)
        self.subscribe()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # waits for serve_forever to return
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None

    def __enter__(self) -> OscListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sending ---------------------------------------------------------------------------------
    def send(self, address: str, args: Sequence[object] = (), *, to: tuple[str, int] | None = None) -> bool:
        """Send one message from the listening socket (so replies to "the sender" reach us)."""
        server, target = self._server, to or self.daw_address
        if server is None or target is None:
            return False
        try:
            server.socket.sendto(build_osc_message(address, args), target)
            return True
        except OSError as e:
            log.debug("could not send %s to %s: %s", address, target, e)
            return False

    def subscribe(self) -> None:
        """(Re-)send the dialect's subscriptions to the DAW."""
        self._last_subscribed_at = self.time_fn()
        self.dialect.resubscribe_requested = False
        if self.daw_address is None:
            return
        for address, args in self.dialect.subscriptions():
            if self.send(address, args):
                self.subscriptions_sent += 1

    # -- server thread ---------------------------------------------------------------------------
    def _service(self) -> None:
        if self.dialect.resubscribe_requested:
            self.subscribe()
            return
        if self.resubscribe_after_s is None or self.daw_address is None:
            return
        now = self.time_fn()
        last = max(self.last_heard_at or -float("inf"), self._last_subscribed_at)
        if now - last > self.resubscribe_after_s:
            log.info("%s silent for %.0f s: subscribing again", self.dialect.source, now - last)
            self.subscribe()

    def _note_malformed(self, client_address: object, why: str) -> None:
        if self.malformed == 0:
            log.warning("ignored a malformed OSC datagram on %s:%d from %s (%s); further ones are only counted",
                        *self.address, client_address, why)
        self.malformed += 1

    def _handle_datagram(self, data: bytes, client_address: object) -> None:
        self._handle_batch([(data, client_address)])

    def _handle_batch(self, batch: Sequence[tuple[bytes, object]]) -> None:
        """Datagrams that arrived together (drained from the socket at once): per OSC address only
        the newest message is handed to the dialect, in the order of those newest ones (a DAW's
        feedback addresses each carry a whole value: tempo, beat, playing).

        Under a flood this is most of the listener's work, and on a busy machine it gets only a
        slice of a core: so a plain message that a newer one to the same address supersedes is
        not even parsed (its address is the bytes before its first NUL; looking newest-first, it
        is skipped once that address was seen) — nor checked, so a malformed one of those is not
        counted. Bundles are always parsed (their addresses are inside).
        """
        t = self.time_fn()
        self.datagrams += len(batch)
        self.last_heard_at = t
        seen: set[bytes] = set()
        keep: list[tuple[bytes, object]] = []
        for data, client_address in reversed(batch):
            if data[:1] == b"/":
                end = data.find(b"\0")
                key = data if end < 0 else data[:end]
                if key in seen:
                    continue
                seen.add(key)
            keep.append((data, client_address))
        newest: dict[str, tuple[object, ...]] = {}
        for data, client_address in reversed(keep):
            if not is_well_formed_osc(data):
                self._note_malformed(client_address, f"not a well-formed OSC packet ({len(data)} bytes)")
                continue
            try:
                messages = osc_packet.OscPacket(data).messages
            except Exception as e:  # noqa: BLE001 - python-osc raises ParseError, but also UnicodeDecodeError etc.
                self._note_malformed(client_address, f"{type(e).__name__}: {e}"[:200])
                continue
            for timed in messages:  # bundle time tags are ignored: the arrival time is the truth here
                address = timed.message.address
                newest.pop(address, None)  # re-inserted last: dict order = order of the newest ones
                newest[address] = tuple(timed.message.params)
        self.coalesced += len(batch) - 1
        for address, params in newest.items():
            state = self.dialect.handle(address, params, t)
            if state is None:
                continue
            self.states += 1
            try:
                self.sink(state)
            except Exception:  # noqa: BLE001 - a failing consumer must not stop the listener
                if self._sink_errors == 0:
                    log.exception("the transport sink raised; the listener keeps running")
                self._sink_errors += 1
        if self.dialect.resubscribe_requested:
            self.subscribe()


class MarkerRequest:
    """Ask a running listener's DAW for its markers (where the protocol has a request) and tell
    when they are in, without blocking: the app polls :meth:`ready` from its timer.

    ready: a whole list arrived since the request (Live's reply; or before it, when the DAW could
    not be asked), or marker messages came and then ``quiet_s`` of quiet (REAPER sends no
    end-of-list). Raises TransportError when the listener's dialect reports no markers.
    """

    def __init__(self, listener: OscListener, *, daw_address: tuple[str, int] | None = None,
                 quiet_s: float = 0.5) -> None:
        collector = listener.dialect.markers
        if collector is None:
            raise TransportError(
                f"{listener.dialect.source} reports no markers over OSC; use Ableton Live (StemBridge script or AbletonOSC) or "
                "REAPER (its markers and regions), or add the sections in stembridge")
        self.listener, self.collector, self.quiet_s = listener, collector, quiet_s
        self.started_at = listener.time_fn()
        target = daw_address or listener.daw_address
        self.asked = False
        for address, args in collector.requests():
            if target is not None:
                self.asked = listener.send(address, args, to=target) or self.asked

    def ready(self) -> bool:
        c, last = self.collector, self.collector.last_at
        if last is None:
            return False
        if c.complete:
            return last >= self.started_at or not self.asked
        return self.listener.time_fn() - last >= self.quiet_s and bool(c.markers())

    def markers(self) -> list[DawMarker]:
        return self.collector.markers()


def fetch_daw_markers(
    daw: str,
    *,
    listener: OscListener | None = None,
    listen: tuple[str, int] | None = None,
    daw_address: tuple[str, int] | None = None,
    window_s: float = 3.0,
    quiet_s: float = 0.5,
) -> list[DawMarker]:
    """The DAW's markers (cue points, markers, regions) over OSC: ask where the protocol can be
    asked, then collect what arrives.

    ``daw``: a dialect name ("ableton", "reaper"). ``listener``: a running listener for that DAW
    (the app's sync source: REAPER sends its markers to the same port as the transport, and
    AbletonOSC always replies to port 11001, which the sync listener holds); else one is opened on
    ``listen`` (host, port) for the call. ``daw_address``: where the DAW listens, for the request
    (``/live/song/get/cue_points``; REAPER: ``/device/marker/count``); default the listener's.

    Returns as soon as a whole list arrived (Live's reply), or once the DAW was quiet for
    ``quiet_s`` after sending markers (REAPER has no end-of-list message), or after ``window_s``
    with what came (possibly nothing: the caller says why). Raises TransportError when the port
    cannot be opened or the dialect reports no markers.
    """
    own = listener is None
    if listener is None:
        if listen is None:
            raise TransportError(f"fetch_daw_markers({daw!r}): give a listener or a (host, port) to listen on")
        listener = OscListener(make_dialect(daw), lambda state: None, listen_host=listen[0],
                               listen_port=listen[1], resubscribe_after_s=None)
        listener.start()
    try:
        request = MarkerRequest(listener, daw_address=daw_address, quiet_s=quiet_s)
        deadline = request.started_at + max(0.0, window_s)
        while not request.ready() and listener.time_fn() < deadline:
            time.sleep(0.01)
        return request.markers()
    finally:
        if own:
            listener.stop()
