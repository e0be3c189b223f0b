"""Ableton Link: the pure timeline logic, the missing-package message, and a real Link session.

The real session runs ONLY inside a network namespace this test creates (``unshare -rn``: a new
user + network namespace whose only interface is loopback, with a multicast route on it), with a
second Link peer in the same namespace. Link multicasts on every interface it finds, so it is
never started outside that namespace; the script also refuses to start Link unless ``lo`` is the
only interface it can see. Skipped where unshare/ip/aalink are unavailable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge.errors import MissingDependency
from bridge.transport.link import LinkSource, LinkTimeline, import_aalink
from bridge.transport.state import TransportState

REPO = Path(__file__).resolve().parents[1]


# --- pure timeline ----------------------------------------------------------------------------------

def test_alone_bar_one_is_the_quantum_boundary_where_playing_starts():
    tl = LinkTimeline(quantum_beats=4.0)
    s = tl.state(link_beat=41.0, link_tempo_bpm=100.0, link_playing=False, t=1.0)
    assert not s.playing
    s = tl.state(link_beat=46.02, link_tempo_bpm=100.0, link_playing=True, t=2.0)  # started at Link beat 44
    assert s.playing and s.position_beats == pytest.approx(2.02)
    assert (s.bar, s.beat) == (1, pytest.approx(3.02))
    s = tl.state(link_beat=58.5, link_tempo_bpm=100.0, link_playing=True, t=9.0)
    assert s.position_beats == pytest.approx(14.5) and s.bar == 4
    assert s.position_seconds == pytest.approx(14.5 * 0.6)
    assert s.source == "link" and s.tempo_bpm == 100.0


def reference(beats, *, t, playing=True, tempo=120.0, sig=(4, 4)):
    return TransportState(playing=playing, tempo_bpm=tempo, position_beats=beats, position_seconds=beats * 60 / tempo,
                          time_signature=sig, source="ableton_osc", received_at=t)


def test_reference_position_snaps_to_link_phase():
    tl = LinkTimeline(quantum_beats=4.0)
    # the DAW says beat 33.03 (coarse OSC) while Link is at 101.0: 0.03 off whole bars → Link's phase kept
    tl.set_reference(reference(33.03, t=5.0), link_beat=101.0, t=5.0)
    s = tl.state(link_beat=102.5, link_tempo_bpm=120.0, link_playing=False, t=5.75)
    assert s.playing  # the position source says playing (Link start/stop not needed)
    assert s.position_beats == pytest.approx(34.5)
    # small reference jitter does not move it; a locate does
    tl.set_reference(reference(34.55, t=5.75), link_beat=102.5, t=5.75)
    assert tl.state(link_beat=102.5, link_tempo_bpm=120.0, link_playing=False, t=5.75).position_beats == pytest.approx(34.5)
    tl.set_reference(reference(64.0, t=6.0), link_beat=103.0, t=6.0)
    assert tl.state(link_beat=103.0, link_tempo_bpm=120.0, link_playing=False, t=6.0).position_beats == pytest.approx(64.0)
    # not phase-aligned (1.5 beats off whole bars): the reference is kept as is
    tl2 = LinkTimeline(quantum_beats=4.0)
    tl2.set_reference(reference(10.5, t=1.0), link_beat=1.0, t=1.0)
    assert tl2.state(link_beat=2.0, link_tempo_bpm=120.0, link_playing=True, t=1.5).position_beats == pytest.approx(11.5)


def test_stopped_reference_freezes_position():
    tl = LinkTimeline()
    tl.set_reference(reference(12.0, t=1.0, playing=False, sig=(3, 4)), link_beat=50.0, t=1.0)
    s = tl.state(link_beat=60.0, link_tempo_bpm=120.0, link_playing=True, t=6.0)
    assert not s.playing and s.position_beats == 12.0 and s.time_signature == (3, 4)


def test_missing_aalink_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aalink", None)  # import fails
    with pytest.raises(MissingDependency, match=r"stembridge\[link\]"):
        import_aalink()
    with pytest.raises(MissingDependency, match="aalink"):
        LinkSource(lambda s: None).start()


# --- a real Link session, isolated in a network namespace ---------------------------------------------

PEER = r"""
import asyncio, json, sys, time, aalink
async def main():
    link = aalink.Link(133.0)
    link.quantum = 4
    link.start_stop_sync_enabled = True
    link.enabled = True
    end = time.monotonic() + float(sys.argv[1])
    started = False
    while time.monotonic() < end:
        if not started and link.num_peers >= 1:
            await asyncio.sleep(0.3)
            link.playing = True  # start the session once stembridge has joined
            started = True
        print(json.dumps([time.monotonic(), link.beat, link.tempo, link.playing, link.num_peers]), flush=True)
        await asyncio.sleep(0.005)
asyncio.run(main())
"""

MAIN = r"""
import json, socket, subprocess, sys, time
names = [name for _, name in socket.if_nameindex()]
if names != ["lo"]:  # never start Link where it could reach a real network
    print(json.dumps({"error": "not isolated: %s" % names}))
    sys.exit(3)
from bridge.transport.link import LinkSource
peer = subprocess.Popen([sys.executable, "-c", sys.argv[1], "3"], stdout=subprocess.PIPE, text=True)
states = []
source = LinkSource(states.append, tempo_bpm=90.0)
with source:
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and not (states and states[-1].playing):
        time.sleep(0.01)
    time.sleep(0.5)
    peers = source.num_peers
peer_log = [json.loads(line) for line in peer.communicate(timeout=10)[0].splitlines() if line.strip()]
print(json.dumps({"peers": peers, "peer": peer_log,
                  "ours": [[s.received_at, s.position_beats, s.tempo_bpm, s.playing, s.bar] for s in states]}))
"""


def _namespace_available() -> str | None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import_aalink()
    except MissingDependency:
        return "aalink is not installed (pip install 'stembridge[link]')"
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                           timeout=10)
    if probe.returncode != 0:
        return f"cannot create a network namespace here ({probe.stderr.strip() or probe.returncode})"
    return None


def test_link_session_in_an_isolated_network_namespace(tmp_path):
    reason = _namespace_available()
    if reason:
        pytest.skip(reason)
    script = tmp_path / "link_main.py"
    script.write_text(MAIN)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    inner = 'ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@"'
    run = subprocess.run(["unshare", "-rn", "sh", "-c", inner, sys.executable, str(script), PEER],
                         capture_output=True, text=True, timeout=40, env=env, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["peers"] >= 1
    peer = np.array([[t, beat, tempo, playing] for t, beat, tempo, playing, _ in result["peer"]], dtype=float)
    ours = [s for s in result["ours"] if s[3]]
    assert ours, "Link never reported playing"
    # the session tempo, as the other peer sees it
    assert all(abs(tempo - peer[-1, 2]) < 0.01 for _, _, tempo, _, _ in ours[5:])
    # phase: our song position falls on the other peer's beat, modulo the 4-beat quantum
    t = np.array([s[0] for s in ours])
    inside = (t > peer[0, 0]) & (t < peer[-1, 0])
    peer_beat = np.interp(t[inside], peer[:, 0], peer[:, 1])
    diff = (np.array([s[1] for s in ours])[inside] - peer_beat + 2.0) % 4.0 - 2.0
    assert inside.sum() > 20
    assert np.max(np.abs(diff)) < 0.01  # < 5 ms at 133 BPM
    # bar 1 is where the session started playing
    assert ours[0][1] < 4.0 and ours[0][4] == 1


def test_alone_position_holds_while_the_session_is_stopped():
    tl = LinkTimeline(quantum_beats=4.0)
    assert tl.state(link_beat=10.0, link_tempo_bpm=120.0, link_playing=False, t=1.0).position_beats == 0.0
    assert tl.state(link_beat=11.0, link_tempo_bpm=120.0, link_playing=False, t=1.5).position_beats == 0.0
    tl.state(link_beat=12.0, link_tempo_bpm=120.0, link_playing=True, t=2.0)
    s = tl.state(link_beat=17.5, link_tempo_bpm=120.0, link_playing=True, t=4.75)
    assert s.position_beats == pytest.approx(5.5)
    s = tl.state(link_beat=18.0, link_tempo_bpm=120.0, link_playing=False, t=5.0)  # stopped: held
    assert not s.playing and s.position_beats == pytest.approx(5.5)
    assert tl.state(link_beat=30.0, link_tempo_bpm=120.0, link_playing=False, t=11.0).position_beats == pytest.approx(5.5)
