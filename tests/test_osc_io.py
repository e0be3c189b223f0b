"""The OSC socket layer: datagrams in, states out; subscriptions out; malformed input survived.

All traffic is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc import osc_packet

from bridge.errors import TransportError
from bridge.transport import osc_protocol as P
from bridge.transport.osc_dialects import make_dialect
from bridge.transport.osc_io import (
    OscListener,
    build_osc_message,
    is_well_formed_osc,
    parse_host_port,
)


def wait_until(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def udp():
    """A plain UDP socket on 127.0.0.1 (the fake DAW's end)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    yield s
    s.close()


def osc_string(text: bytes) -> bytes:
    data = text + b"\0"
    return data + b"\0" * (-len(data) % 4)


NOT_UTF8_ADDRESS = b"/tempo/\xff\xfe"
# Built by hand (struct), independent of python-osc's builder.
VALID_TEMPO = osc_string(b"/tempo/raw") + osc_string(b",f") + struct.pack(">f", 123.0)
MALFORMED_DATAGRAMS = [
    b"",
    b"garbage that is not OSC at all",
    b"\xff\xfe\xfd",
    osc_string(b"/tempo/raw") + osc_string(b",f"),  # truncated: float missing
    osc_string(b"/tempo/raw") + osc_string(b",f") + b"\x42",  # truncated inside the float
    osc_string(b"/tempo/raw") + osc_string(b"f") + struct.pack(">f", 1.0),  # tag string without comma
    osc_string(b"/tempo/raw") + osc_string(b",x") + struct.pack(">f", 1.0),  # unknown type tag
    osc_string(b"/tempo/raw") + osc_string(b",[f") + struct.pack(">f", 1.0),  # unclosed array
    osc_string(NOT_UTF8_ADDRESS) + osc_string(b",f") + struct.pack(">f", 1.0),  # address not UTF-8
    osc_string(b"/tempo/raw") + osc_string(b",s") + b"no terminator",
    b"#bundle\0" + b"\x00" * 3,  # truncated bundle header
    b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", 500) + VALID_TEMPO,  # element size lies
    osc_string(b"/tempo/raw") + osc_string(b",b") + struct.pack(">i", 10**6),  # blob longer than packet
]


def test_datagrams_parsed_without_a_socket_and_malformed_ones_survive(caplog):
    states = []
    listener = OscListener(make_dialect("reaper"), states.append, listen_port=0)
    caplog.set_level(logging.WARNING)
    for data in MALFORMED_DATAGRAMS:
        listener._handle_datagram(data, ("127.0.0.1", 5))
    assert states == []
    assert listener.malformed >= 8
    listener._handle_datagram(VALID_TEMPO, ("127.0.0.1", 5))
    assert len(states) == 1 and states[0].tempo_bpm == 123.0
    ours = [r for r in caplog.records if r.name == "bridge.transport.osc_io"]
    assert len(ours) == 1  # logged once, not per packet
    assert not [r for r in caplog.records if "Unhandled parameter type" in r.getMessage()]  # python-osc's own
    assert listener.dialect.internal_errors == 0


def test_well_formed_check_accepts_what_senders_build():
    for args in ([], [1], [1.5], ["text"], [b"blob"], [True, False, None], [2**40], [1, "a", 2.0, b"xyz"]):
        assert is_well_formed_osc(build_osc_message("/a/b", args)), args
    bundle = b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", len(VALID_TEMPO)) + VALID_TEMPO
    assert is_well_formed_osc(bundle)
    assert is_well_formed_osc(osc_string(b"/no/typetags"))
    for data in MALFORMED_DATAGRAMS:
        if NOT_UTF8_ADDRESS in data:  # well-formed bytes; python-osc's decode error is caught instead
            continue
        assert not is_well_formed_osc(data), data


def test_bundle_with_future_time_tag_is_not_waited_for():
    states = []
    listener = OscListener(make_dialect("reaper"), states.append, listen_port=0)
    far_future = struct.pack(">Q", (2**32 - 1) << 32)  # NTP time in 2036: python-osc's dispatcher would sleep
    bundle = b"#bundle\0" + far_future + struct.pack(">i", len(VALID_TEMPO)) + VALID_TEMPO
    started = time.monotonic()
    listener._handle_datagram(bundle, ("127.0.0.1", 5))
    assert time.monotonic() - started < 1.0
    assert len(states) == 1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.one_of(
    st.binary(max_size=64),
    st.builds(lambda a, b: osc_string(a) + b, st.sampled_from([b"/play", b"/tempo/raw", b"/beat/str", b"/time"]),
              st.binary(max_size=40)),
    st.builds(lambda b: b"#bundle\0" + b, st.binary(max_size=48)),
))
def test_fuzzed_datagrams_never_escape(data):
    listener = OscListener(make_dialect("reaper"), lambda s: None, listen_port=0)
    listener._handle_datagram(data, ("127.0.0.1", 5))
    assert listener.dialect.internal_errors == 0


def test_listener_binds_loopback_and_delivers_states(udp):
    states = []
    got = threading.Event()

    def sink(state):
        states.append(state)
        got.set()

    with OscListener(make_dialect("reaper"), sink, listen_port=0) as listener:
        assert listener.address[0] == "127.0.0.1"
        assert listener.running
        for data in MALFORMED_DATAGRAMS:
            udp.sendto(data, listener.address)
        udp.sendto(VALID_TEMPO, listener.address)
        assert got.wait(5.0)
        assert wait_until(lambda: listener.datagrams == len(MALFORMED_DATAGRAMS) + 1)
        assert listener.running  # the server thread survived the garbage
        assert states[-1].tempo_bpm == 123.0
        t_sent = time.monotonic()
        udp.sendto(build_osc_message("/time", [4.0]), listener.address)
        assert wait_until(lambda: states[-1].position_seconds == 4.0)
        assert abs(states[-1].received_at - t_sent) < 1.0  # stamped with our monotonic clock
    assert not listener.running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RCVBUF limits are read from /proc on Linux")
def test_receive_buffer_is_enlarged_and_a_burst_is_not_dropped(udp):
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    if rmem_max < 2 * 1024 * 1024:
        pytest.skip(f"net.core.rmem_max={rmem_max} caps the receive buffer; the burst test needs ≥ 2 MiB")
    n = 1000

    def burst(receive_buffer_bytes):
        release = threading.Event()
        first = threading.Event()

        def sink(state):  # blocks the listener thread on the first state: the burst queues in the kernel
            first.set()
            release.wait(10.0)

        with OscListener(make_dialect("reaper"), sink, listen_port=0,
                         receive_buffer_bytes=receive_buffer_bytes) as listener:
            udp.sendto(VALID_TEMPO, listener.address)
            assert first.wait(5.0)
            for _ in range(n):
                udp.sendto(VALID_TEMPO, listener.address)
            release.set()
            seen, changed_at, deadline = -1, time.monotonic(), time.monotonic() + 5.0
            while listener.datagrams < n + 1 and time.monotonic() < deadline:  # until all, or no progress
                if listener.datagrams != seen:
                    seen, changed_at = listener.datagrams, time.monotonic()
                elif time.monotonic() - changed_at > 0.3:
                    break
                time.sleep(0.01)
            return listener.datagrams - 1, listener.receive_buffer_bytes_granted

    received, granted = burst(P.OSC_RECEIVE_BUFFER_BYTES)
    assert granted >= min(P.OSC_RECEIVE_BUFFER_BYTES, rmem_max)
    assert received == n
    received_small, _ = burst(16 * 1024)  # the kernel default class of buffer drops most of it
    assert received_small < n


def test_subscriptions_come_from_the_listening_port_and_are_resent(udp):
    daw = udp.getsockname()
    with OscListener(make_dialect("ardour"), lambda s: None, listen_port=0, daw_address=daw,
                     resubscribe_after_s=0.3) as listener:
        data, sender = udp.recvfrom(65536)
        assert sender[1] == listener.address[1]  # Ardour's "auto" reply port is the source port
        (msg,) = [m.message for m in osc_packet.OscPacket(data).messages]
        assert msg.address == "/set_surface"
        assert list(msg.params) == [0, 0, P.ARDOUR_FEEDBACK, 0, 0, 0, 0, 0, 0]
        assert P.ARDOUR_FEEDBACK & 32 and P.ARDOUR_FEEDBACK & 64 and P.ARDOUR_FEEDBACK & 1024
        assert P.ARDOUR_FEEDBACK & 2048 and P.ARDOUR_FEEDBACK & 16
        data, _ = udp.recvfrom(65536)  # silence for 0.3 s → registered again
        assert osc_packet.OscPacket(data).messages[0].message.address == "/set_surface"
        # the counter is bumped after the send returns: on a loaded machine the datagram can be here first
        assert wait_until(lambda: listener.subscriptions_sent >= 2)


def test_live_startup_triggers_resubscription(udp):
    daw = udp.getsockname()
    with OscListener(make_dialect("ableton"), lambda s: None, listen_port=0, daw_address=daw,
                     resubscribe_after_s=None) as listener:
        first = []
        for _ in P.ableton_subscriptions():
            first.append(osc_packet.OscPacket(udp.recvfrom(65536)[0]).messages[0].message.address)
        assert "/live/song/start_listen/current_song_time" in first
        assert "/live/song/start_listen/beat" in first
        udp.sendto(build_osc_message("/live/startup"), listener.address)
        again = osc_packet.OscPacket(udp.recvfrom(65536)[0]).messages[0].message.address
        assert again == first[0]


def test_busy_port_is_a_clear_error():
    with OscListener(make_dialect("reaper"), lambda s: None, listen_port=0) as first:
        port = first.address[1]
        with pytest.raises(TransportError, match=str(port)):
            OscListener(make_dialect("reaper"), lambda s: None, listen_port=port).start()
    # released on stop: the port can be bound again
    with OscListener(make_dialect("reaper"), lambda s: None, listen_port=port):
        pass


def test_sink_errors_do_not_stop_the_listener(udp):
    calls = []

    def bad_sink(state):
        calls.append(state)
        raise RuntimeError("consumer bug")

    with OscListener(make_dialect("reaper"), bad_sink, listen_port=0) as listener:
        udp.sendto(VALID_TEMPO, listener.address)
        assert wait_until(lambda: len(calls) == 1)
        udp.sendto(VALID_TEMPO, listener.address)  # after the failing call (two at once coalesce)
        assert wait_until(lambda: len(calls) == 2)
        assert listener.running


@pytest.mark.parametrize(("text", "expected"), [
    ("9000", ("127.0.0.1", 9000)),
    ("10.0.0.5:8000", ("10.0.0.5", 8000)),
    ("[::1]:9000", ("::1", 9000)),
    ("studio-mac", ("studio-mac", 11000)),
])
def test_parse_host_port(text, expected):
    assert parse_host_port(text, default_port=11000) == expected


@pytest.mark.parametrize("text", ["", "host:", "99999", "a:b", "1:2:3"])
def test_parse_host_port_rejects(text):
    with pytest.raises(TransportError, match="HOST"):
        parse_host_port(text)


def test_a_flood_is_coalesced_to_the_newest_position(udp):
    """While the listener is busy, REAPER beat positions queue up; once free it must catch up at
    once — hand over the newest position, not work through the stale ones (issue 17). 150 of them:
    each small datagram takes ~1 kB of socket buffer, and a kernel that caps SO_RCVBUF at Linux's
    default 208 kB (net.core.rmem_max) would drop some of 2000, making the count below a race."""
    release = threading.Event()
    first = threading.Event()
    states = []

    def sink(state):
        states.append(state)
        if not first.is_set():
            first.set()
            release.wait(10.0)  # busy: the flood queues in the kernel

    def beat_str(beats: float) -> bytes:  # REAPER's /beat/str "bar.beat.hundredths"
        bar, beat = divmod(beats, 4.0)
        text = f"{int(bar) + 1}.{int(beat) + 1}.{int(round((beat % 1) * 100)):02d}".encode()
        return osc_string(b"/beat/str") + osc_string(b",s") + osc_string(text)

    with OscListener(make_dialect("reaper"), sink, listen_port=0) as listener:
        udp.sendto(VALID_TEMPO, listener.address)
        assert first.wait(5.0)
        n = 150
        for k in range(n):
            udp.sendto(beat_str(k * 0.01), listener.address)
        release.set()
        assert wait_until(lambda: listener.datagrams >= n + 1)
        assert listener.coalesced > n // 2  # most of the flood arrived behind a newer datagram
        # the newest position was delivered, and far fewer states than datagrams
        assert wait_until(lambda: any(abs(s.position_beats - (n - 1) * 0.01) < 0.011 for s in states[-3:]))
        assert len(states) < n // 2


def test_a_non_loopback_bind_warns_and_loopback_does_not(caplog):
    with caplog.at_level("WARNING", logger="bridge.transport.osc_io"):
        with OscListener(make_dialect("reaper"), lambda s: None, listen_port=0):
            pass
        assert not [r for r in caplog.records if "no authentication" in r.getMessage()]
        with OscListener(make_dialect("reaper"), lambda s: None, listen_host="0.0.0.0", listen_port=0):
            pass
    warnings = [r.getMessage() for r in caplog.records if "no authentication" in r.getMessage()]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]


def test_superseded_datagrams_in_a_batch_are_not_parsed(monkeypatch):
    """Under a flood on a busy machine parsing every datagram made the listener fall ~1 s behind
    (issue 17): in a drained batch only the newest message per address is parsed and delivered;
    the rest are counted, in arrival order of the newest ones."""
    from bridge.transport import osc_io

    parsed = []
    real_packet = osc_io.osc_packet.OscPacket

    def counting_packet(data):
        parsed.append(data)
        return real_packet(data)

    monkeypatch.setattr(osc_io.osc_packet, "OscPacket", counting_packet)
    states = []
    listener = OscListener(make_dialect("reaper"), states.append, listen_port=0)

    def message(address: bytes, tag: bytes, payload: bytes) -> bytes:
        return osc_string(address) + osc_string(b"," + tag) + payload

    batch = [(message(b"/play", b"f", struct.pack(">f", 1.0)), ("127.0.0.1", 5))]
    for k in range(1000):
        batch.append((message(b"/tempo/raw", b"f", struct.pack(">f", 100.0 + k * 0.01)), ("127.0.0.1", 5)))
        batch.append((message(b"/time", b"f", struct.pack(">f", k * 0.01)), ("127.0.0.1", 5)))
    listener._handle_batch(batch)
    assert len(parsed) == 3  # /play, the newest /tempo/raw and the newest /time
    assert listener.datagrams == 2001 and listener.coalesced == 2000
    assert states[-1].tempo_bpm == pytest.approx(100.0 + 999 * 0.01, abs=1e-3)
    assert states[-1].playing and states[-1].position_seconds == pytest.approx(9.99, abs=1e-3)
