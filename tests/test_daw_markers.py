"""The DAW's markers become the project's sections (issue 17 item 4).

Emulated DAWs talk to stembridge over real UDP sockets on 127.0.0.1: an AbletonOSC that answers
``/live/song/get/cue_points`` with its cue list, a REAPER that answers ``/device/marker/count`` with
its marker and region feedback. The truth is the DAW's own list, written in the test (datagrams
built with python-osc's builder or by hand with struct), and the project file read back from disk.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import threading

import pytest
from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.cli import main as cli_main
from bridge.errors import ProjectError
from bridge.project import load_project
from bridge.project.markers import markers_to_sections
from bridge.project.schema import Project, Section
from bridge.project.store import save_project
from bridge.session import Session
from bridge.transport import osc_protocol as P
from bridge.transport.markers import DawMarker
from bridge.transport.osc_dialects import make_dialect
from bridge.transport.osc_io import OscListener, fetch_daw_markers

QUIET = dict(analyse=False, preview=False, watch=False, autosave=False)

# Live's cue points: (name, beats). Out of order on purpose (Live lists them as created).
LIVE_CUES = [("Verse", 32.0), ("Intro", 0.0), ("Drop", 96.5), ("Chorus", 64.0)]
# REAPER: markers (seconds) and one region (start, length)
REAPER_MARKERS = [("Intro", 0.0), ("Verse 1", 12.75), ("Bridge", 61.125)]
REAPER_REGION = ("Chorus", 30.5, 15.25)


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def osc_string(text: bytes) -> bytes:
    data = text + b"\0"
    return data + b"\0" * (-len(data) % 4)


GARBAGE = [
    b"not osc at all",
    msg("/live/song/get/cue_points", 1.0, "name first?", float("nan"), "x"),  # pairs in the wrong order
    msg("/marker/x/time", 3.0),
    msg("/marker/2/time", "soon"),
    msg("/marker/7/time", float("inf")),
    msg("/marker/7/time", -4.0),
    msg("/marker/99999/time", 1.0),
    msg("/region/9/length", 1.0, 2.0),  # two arguments
    msg("/marker/8/name", "x" * 400),  # a name longer than any DAW allows
    osc_string(b"/marker/1/time") + osc_string(b",f"),  # truncated: the float is missing
]


@pytest.fixture
def project_dir(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    project = Project(name="markers", sections=[
        Section(name="Chorus", start=10.0, unit="beats", prompt="neon rain", seed=77),
        Section(name="Old", start=40.0, unit="beats", prompt="keep me?"),
    ])
    save_project(project, d)
    return d


class FakeDaw:
    """A UDP socket that answers the first datagram it gets with ``reply(request)`` datagrams."""

    def __init__(self, reply) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        # the request comes once the command line has imported and opened the project: seconds on a
        # loaded machine, so wait long (the thread is a daemon; close() does not wait for it)
        self.sock.settimeout(120.0)
        self.reply = reply
        self.requests: list[tuple[str, list]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        with self.sock:
            try:
                data, sender = self.sock.recvfrom(65536)
            except OSError:
                return
            m = osc_packet.OscPacket(data).messages[0].message
            self.requests.append((m.address, list(m.params)))
            for datagram in self.reply(m.address):
                self.sock.sendto(datagram, sender)  # AbletonOSC / REAPER answer the sender's port

    def close(self) -> None:
        self.thread.join(timeout=5.0)
        if self.thread.is_alive():  # no request came (the test failed before): wake the thread up
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


def live_reply(address: str) -> list[bytes]:
    if address != "/live/song/get/cue_points":
        return []
    flat = [v for name, beats in LIVE_CUES for v in (name, beats)]
    return [*GARBAGE, msg("/live/song/get/cue_points", *flat)]


def reaper_reply(address: str) -> list[bytes]:
    if address != "/device/marker/count":
        return []
    # Garbage first: the listener hands on only the newest message per address of a burst, so a
    # garbage value sent after a good one on the same address would replace it (as a newer tempo does).
    out = list(GARBAGE)
    for i, (name, t) in enumerate(REAPER_MARKERS, start=1):
        out += [msg(f"/marker/{i}/number/str", str(i)), msg(f"/marker/{i}/name", name),
                # REAPER sends f: a float32 on the wire (hand-packed, independent of the builder)
                osc_string(f"/marker/{i}/time".encode()) + osc_string(b",f") + struct.pack(">f", t)]
    # an unused slot past the last marker (empty number string)
    out += [msg("/marker/4/number/str", ""), msg("/marker/4/name", ""), msg("/marker/4/time", 0.0)]
    name, start, length = REAPER_REGION
    out += [msg("/region/1/number/str", "1"), msg("/region/1/name", name), msg("/region/1/time", start),
            msg("/region/1/length", length)]
    return out


def test_live_cue_points_become_sections_over_udp(project_dir):
    daw = FakeDaw(live_reply)
    try:
        with OscListener(make_dialect("ableton"), lambda s: None, listen_port=0, resubscribe_after_s=None) as lis:
            host, port = daw.address.split(":")
            markers = fetch_daw_markers("ableton", listener=lis, daw_address=(host, int(port)), window_s=30.0)  # returns on the reply; long only for a loaded machine
            assert lis.dialect.internal_errors == 0
    finally:
        daw.close()
    assert daw.requests == [("/live/song/get/cue_points", [])]
    with Session.open(project_dir, **QUIET) as s:
        assert s.import_daw_markers(markers, daw="Ableton Live") == 4
        s.save()
        sections = s.project.sections
        assert [(x.name, x.start, x.end, x.unit) for x in sections] == [
            (name, beats, None, "beats") for name, beats in sorted(LIVE_CUES, key=lambda c: c[1])]
        # a marker named like a section keeps the producer's prompt and seed
        chorus = next(x for x in sections if x.name == "Chorus")
        assert (chorus.prompt, chorus.seed) == ("neon rain", 77)
        # one undo step gives the old sections back
        assert s.undo()
        assert [x.name for x in s.project.sections] == ["Chorus", "Old"]
        assert s.redo()
    saved = load_project(project_dir)[0]
    assert [(x.name, x.start) for x in saved.sections] == sorted(
        [(n, b) for n, b in LIVE_CUES], key=lambda c: c[1])


def test_reaper_markers_and_regions_arrive_through_the_cli(project_dir, capsys):
    daw = FakeDaw(reaper_reply)
    try:
        rc = cli_main(["sections", "import-daw", str(project_dir), "--daw", "reaper", "--port", "0",
                       "--daw-address", daw.address, "--window", "30"])
    finally:
        daw.close()
    assert rc == 0, capsys.readouterr().err
    assert daw.requests[0] == ("/device/marker/count", [P.REAPER_MARKER_BANK])
    saved = load_project(project_dir)[0]
    got = [(x.name, x.start, x.end, x.unit) for x in saved.sections]
    name, start, length = REAPER_REGION
    truth = sorted([(n, t, None, "seconds") for n, t in REAPER_MARKERS] + [(name, start, start + length, "seconds")],
                   key=lambda r: r[1])
    assert len(got) == len(truth)
    for g, t in zip(got, truth, strict=True):
        assert g[0] == t[0] and g[3] == t[3]
        assert g[1] == pytest.approx(t[1], abs=1e-6)  # float32 on the wire: these values are exact in it
        assert (g[2] is None) == (t[2] is None) and (g[2] is None or g[2] == pytest.approx(t[2], abs=1e-6))


def test_nothing_arrives_is_a_clear_error_and_the_sections_stay(project_dir):
    with OscListener(make_dialect("reaper"), lambda s: None, listen_port=0, resubscribe_after_s=None) as lis:
        markers = fetch_daw_markers("reaper", listener=lis, window_s=0.2)
    assert markers == []
    with Session.open(project_dir, **QUIET) as s:
        with pytest.raises(ProjectError, match="no markers"):
            s.import_daw_markers(markers, daw="REAPER")
        assert [x.name for x in s.project.sections] == ["Chorus", "Old"]


def test_ardour_is_refused_with_the_reason(project_dir, capsys):
    assert cli_main(["sections", "import-daw", str(project_dir), "--daw", "ardour"]) == 2
    assert "no list of its locations" in capsys.readouterr().err


def test_marker_messages_never_move_the_transport_and_garbage_never_breaks_a_dialect():
    for name in ("ableton", "reaper"):
        d = make_dialect(name)
        before = d.state
        for data in GARBAGE[1:-1]:
            m = osc_packet.OscPacket(data).messages[0].message
            assert d.handle(m.address, tuple(m.params), 1.0) is None
        for args in [(), (None,), ("a",), (1, 2, 3), (b"\x00",), ([1],), (math.nan, "x"), ("x", 1e300)]:
            for address in ("/live/song/get/cue_points", "/marker/1/time", "/marker/1/name", "/region/2/length"):
                assert d.handle(address, args, 2.0) is None
        assert d.state == before and d.internal_errors == 0
        assert all(math.isfinite(m.start) and m.start >= 0 for m in d.markers.markers())


def test_merge_keeps_the_sections_and_adds_markers_between_them():
    existing = [Section(name="A", start=0.0, unit="seconds", prompt="a"),
                Section(name="B", start=20.0, unit="seconds", prompt="b")]
    merged = markers_to_sections([DawMarker("", 20.0005), DawMarker("Mid", 10.0)], existing, mode="merge")
    assert [(s.name, s.start, s.prompt) for s in merged] == [("A", 0.0, "a"), ("Mid", 10.0, ""), ("B", 20.0, "b")]
