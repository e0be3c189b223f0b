"""The StemBridge Live remote script (daw_scripts/ableton/StemBridge), run outside Live.

Live's ``_Framework`` modules are stubbed in ``sys.modules``; a stand-in ``song`` has Live's
properties and listener methods. The script sends real UDP datagrams to 127.0.0.1, which are
decoded with python-osc and the app's own StembridgeOscDialect, and compared with the stand-in
song's values.
"""

from __future__ import annotations

import ast
import importlib
import socket
import sys
import types
from pathlib import Path

import pytest
from pythonosc import osc_packet

from bridge.transport import osc_protocol as P
from bridge.transport.osc_dialects import StembridgeOscDialect
from bridge.transport.osc_io import is_well_formed_osc

SCRIPT_DIR = Path(__file__).resolve().parents[1] / "daw_scripts" / "ableton" / "StemBridge"


class FakeSong:
    """Live's Song as the script uses it: properties plus add_/remove_<prop>_listener."""

    PROPS = ("is_playing", "tempo", "signature_numerator", "signature_denominator", "loop", "loop_start",
             "loop_length", "current_song_time", "cue_points")

    def __init__(self) -> None:
        self.is_playing = False
        self.tempo = 120.0
        self.signature_numerator = 4
        self.signature_denominator = 4
        self.loop = False
        self.loop_start = 0.0
        self.loop_length = 16.0
        self.current_song_time = 0.0
        self.cue_points: list = []  # Live's CuePoint objects: .name, .time (beats)
        self.listeners: dict[str, list] = {p: [] for p in self.PROPS}
        for prop in self.PROPS:
            setattr(self, f"add_{prop}_listener", self._adder(prop))
            setattr(self, f"remove_{prop}_listener", self._remover(prop))

    def _adder(self, prop):
        def add(cb):
            if cb in self.listeners[prop]:
                raise RuntimeError("Listener already connected")  # as Live does
            self.listeners[prop].append(cb)
        return add

    def _remover(self, prop):
        def remove(cb):
            if cb not in self.listeners[prop]:
                raise RuntimeError("Listener not connected")
            self.listeners[prop].remove(cb)
        return remove

    def change(self, prop: str, value) -> None:
        setattr(self, prop, value)
        for cb in list(self.listeners[prop]):
            cb()


class FakeControlSurface:
    """The bits of _Framework.ControlSurface.ControlSurface the script calls."""

    def __init__(self, c_instance):
        self._c_instance = c_instance
        self.messages: list[str] = []
        self.display_updates = 0
        self.disconnected = False

    def song(self):
        return self._c_instance.song()

    def log_message(self, *args):
        self.messages.append(" ".join(str(a) for a in args))

    def show_message(self, message):
        self.messages.append(message)

    def update_display(self):
        self.display_updates += 1

    def disconnect(self):
        self.disconnected = True


class FakeCInstance:
    def __init__(self, song):
        self._song = song

    def song(self):
        return self._song


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


@pytest.fixture
def script(monkeypatch, receiver):
    """Import the script package with Live's modules stubbed; yields (package, make_surface)."""
    framework = types.ModuleType("_Framework")
    control_surface = types.ModuleType("_Framework.ControlSurface")
    control_surface.ControlSurface = FakeControlSurface
    framework.ControlSurface = control_surface
    monkeypatch.setitem(sys.modules, "_Framework", framework)
    monkeypatch.setitem(sys.modules, "_Framework.ControlSurface", control_surface)
    monkeypatch.syspath_prepend(str(SCRIPT_DIR.parent))
    for name in [m for m in sys.modules if m == "StemBridge" or m.startswith("StemBridge.")]:
        monkeypatch.delitem(sys.modules, name)
    package = importlib.import_module("StemBridge")
    monkeypatch.setattr(package.config, "PORT", receiver.getsockname()[1])
    clock = FakeClock()
    monkeypatch.setattr(importlib.import_module("StemBridge.surface").time, "monotonic", clock)
    yield package, clock
    for name in [m for m in sys.modules if m == "StemBridge" or m.startswith("StemBridge.")]:
        sys.modules.pop(name, None)


def receive_all(sock) -> list[bytes]:
    """Everything sent so far (loopback delivers at once; the timeout only bounds the wait)."""
    out = []
    sock.settimeout(0.05)
    try:
        while True:
            out.append(sock.recvfrom(65536)[0])
    except TimeoutError:
        pass
    return out


def decode(datagrams, dialect, t):
    """The app's own path: python-osc decode → StembridgeOscDialect.handle."""
    states = []
    for data in datagrams:
        assert is_well_formed_osc(data)
        for timed in osc_packet.OscPacket(data).messages:
            if timed.message.address == P.STEMBRIDGE_CUE_POINTS_ADDRESS:
                continue  # the locators: see test_script_sends_the_locators
            assert timed.message.address == P.STEMBRIDGE_TRANSPORT_ADDRESS
            state = dialect.handle(timed.message.address, tuple(timed.message.params), t)
            if state is not None:
                states.append(state)
    return states


def test_script_constants_match_the_app(script):
    package, _ = script
    config = package.config
    assert config.ADDRESS == P.STEMBRIDGE_TRANSPORT_ADDRESS
    assert config.PROTOCOL_VERSION == P.STEMBRIDGE_PROTOCOL_VERSION
    assert config.TYPETAGS == P.STEMBRIDGE_TRANSPORT_TYPETAGS
    assert config.SEND_INTERVAL_S == P.STEMBRIDGE_SEND_INTERVAL_S
    assert config.CUE_ADDRESS == P.STEMBRIDGE_CUE_POINTS_ADDRESS
    assert config.CUE_INTERVAL_S == P.STEMBRIDGE_CUE_INTERVAL_S
    assert importlib.reload(config).PORT == P.STEMBRIDGE_OSC_PORT  # the shipped file, not the patched one
    assert config.HOST == "127.0.0.1"


def test_script_is_stdlib_only_threadless_and_python37_syntax():
    allowed_roots = {"socket", "struct", "time", "_Framework", "ableton"}
    for path in SCRIPT_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 7))  # Live 11 = Python 3.7
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed_roots, f"{path.name} imports {roots - allowed_roots}"
    assert (SCRIPT_DIR / "__init__.py").exists()


def test_script_sends_transport_on_changes_and_ticks(script, receiver):
    package, clock = script
    song = FakeSong()
    song.tempo, song.signature_numerator, song.signature_denominator = 97.0, 6, 8
    song.loop, song.loop_start, song.loop_length = True, 8.0, 4.0
    surface = package.create_instance(FakeCInstance(song))
    dialect = StembridgeOscDialect()

    (first,) = decode(receive_all(receiver), dialect, clock.t)  # sent on load
    assert (first.playing, first.tempo_bpm, first.position_beats, first.time_signature) == (False, 97.0, 0.0, (6, 8))
    assert (dialect.loop_on, dialect.loop_start_beats, dialect.loop_length_beats) == (True, 8.0, 4.0)

    song.change("is_playing", True)  # a change is sent at once
    (started,) = decode(receive_all(receiver), dialect, clock.t)
    assert started.playing

    # Live's ~100 ms display tick while the song plays: one message per tick, position as Live says
    states = []
    for k in range(1, 11):
        clock.t += 0.1
        song.current_song_time = k * 0.1 * 97.0 / 60.0  # no listener fire: the tick carries progress
        surface.update_display()
        states += decode(receive_all(receiver), dialect, clock.t)
    assert len(states) == 10
    assert surface.display_updates == 10  # the base class still gets its update_display
    assert states[-1].position_beats == pytest.approx(97.0 / 60.0, abs=1e-9)
    assert all(s.playing and s.tempo_bpm == 97.0 for s in states)

    # steady song-time listener fires send nothing extra; a jump (locate / loop wrap) is sent at once
    song.change("current_song_time", song.current_song_time + 0.001)
    assert receive_all(receiver) == []
    song.change("current_song_time", 8.0)
    (jumped,) = decode(receive_all(receiver), dialect, clock.t)
    assert jumped.position_beats == 8.0

    song.change("tempo", 140.0)
    song.change("signature_numerator", 3)
    song.change("signature_denominator", 4)
    *_, last = decode(receive_all(receiver), dialect, clock.t)
    assert (last.tempo_bpm, last.time_signature) == (140.0, (3, 4))

    surface.disconnect()
    assert all(not cbs for cbs in song.listeners.values())  # every listener removed
    assert surface.disconnected


def test_script_keeps_running_without_a_listener_or_socket(script):
    package, clock = script
    package.config.PORT = 9  # "discard": nobody listens; sendto must not raise or block
    song = FakeSong()
    surface = package.create_instance(FakeCInstance(song))
    surface._socket.close()  # even a dead socket only drops messages
    for _ in range(3):
        clock.t += 0.1
        surface.update_display()
    assert surface._reporter.dropped >= 3
    assert any("could not send" in m for m in surface.messages)
    surface.disconnect()


def test_hand_written_encoder_matches_python_osc(script):
    package, _ = script
    encode = importlib.import_module("StemBridge.osc_encode").encode_message
    data = encode("/x/yz", ",ifds", (7, 1.5, 2.25, "héllo"))
    (timed,) = osc_packet.OscPacket(data).messages
    assert timed.message.address == "/x/yz"
    assert list(timed.message.params) == [7, 1.5, 2.25, "héllo"]
    with pytest.raises(ValueError):
        encode("/x", ",i", (1, 2))


def test_script_sends_the_locators_and_the_app_makes_them_markers(script, receiver):
    from bridge.transport.markers import DawMarker

    package, clock = script
    song = FakeSong()
    song.cue_points = [types.SimpleNamespace(name="Intro", time=0.0), types.SimpleNamespace(name="Drop", time=64.0)]
    surface = package.create_instance(FakeCInstance(song))
    dialect = StembridgeOscDialect()

    def cues():
        got = None
        for data in receive_all(receiver):
            m = osc_packet.OscPacket(data).messages[0].message
            assert dialect.handle(m.address, tuple(m.params), clock.t) is None or m.address != P.STEMBRIDGE_CUE_POINTS_ADDRESS
            if m.address == P.STEMBRIDGE_CUE_POINTS_ADDRESS:
                got = dialect.markers.markers()
        return got

    assert cues() == [DawMarker("Intro", 0.0, None, "beats"), DawMarker("Drop", 64.0, None, "beats")]  # on load
    song.cue_points.append(types.SimpleNamespace(name="Break", time=32.5))
    song.change("cue_points", song.cue_points)  # a locator added: sent at once
    assert [m.name for m in cues()] == ["Intro", "Break", "Drop"]
    song.cue_points[2].name = "Breakdown"  # a rename has no list listener: the next resend carries it
    clock.t += P.STEMBRIDGE_CUE_INTERVAL_S
    surface.update_display()
    assert [m.name for m in cues()] == ["Intro", "Breakdown", "Drop"]
    song.cue_points.clear()
    song.change("cue_points", song.cue_points)
    assert cues() == [] and dialect.markers.complete  # none left: an empty list, not silence
    assert dialect.internal_errors == 0
    surface.disconnect()
    assert all(not cbs for cbs in song.listeners.values())
