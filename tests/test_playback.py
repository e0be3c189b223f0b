"""Audio playback through a real PortAudio stream: a JACK server with the dummy backend stands in for
the sound card, and ``jack_rec`` (a separate JACK client) records what our stream delivers to the
JACK graph. The recording is compared with a mix the test computes itself from the stem files
(numpy: gains in dB, mutes, offsets, mono to both channels) — not with the code's own mix.

Skipped with the reason where jackd, jack_rec or libportaudio is missing (Debian: ``apt-get install
jackd2 libportaudio2``). The no-device tests run first, before the module's JACK server starts.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import jack_server, write_wav

RATE = 48_000  # the dummy JACK server's rate: nothing resamples
SECONDS = 3.0
#: (file, gain dB, offset s, muted, channels); peaks stay below the limiter's -1 dBFS threshold
STEMS = {
    "Noise A": ("Noise A.wav", -6.0, 0.0, False, 2),
    "Noise B": ("Noise B.wav", 2.0, 0.5, False, 1),
    "Tone": ("Tone.wav", 0.0, 0.0, True, 2),
}


def _stem_audio(name: str) -> np.ndarray:
    gen = np.random.default_rng(list(STEMS).index(name) + 1)
    _, _, offset, _, channels = STEMS[name]
    n = int((SECONDS - offset) * RATE)
    if name == "Tone":
        t = np.arange(n) / RATE
        return np.tile(0.3 * np.sin(2 * np.pi * 440.0 * t), (channels, 1)).astype(np.float32)
    return gen.uniform(-0.15, 0.15, (channels, n)).astype(np.float32)


@pytest.fixture(scope="module")
def built_project(tmp_path_factory) -> Path:
    from bridge.project import save_project
    from bridge.project.create import new_project

    root = tmp_path_factory.mktemp("playback")
    for name, (file, *_rest) in STEMS.items():
        write_wav(root / "stems" / file, _stem_audio(name), RATE, subtype="FLOAT")
    result = new_project(root / "project", root / "stems", name="playback")
    by_file = {Path(s.path).name: s for s in result.project.stems}
    stems = []
    for name, (file, gain_db, offset, muted, _) in STEMS.items():
        stems.append(by_file[file].model_copy(update={"name": name, "gain_db": gain_db,
                                                      "offset_seconds": offset, "muted": muted}))
    save_project(result.project.model_copy(update={"stems": stems}), root / "project")
    return root / "project"


@pytest.fixture
def project_dir(built_project, tmp_path) -> Path:
    """A fresh copy per test (a Session saves its edits on close)."""
    import shutil

    shutil.copytree(built_project.parent / "stems", tmp_path / "stems")
    shutil.copytree(built_project, tmp_path / "project", ignore=shutil.ignore_patterns(".stembridge*"))
    return tmp_path / "project"


def expected_mix(project_dir: Path, *, muted: set[str] | None = None, solo: set[str] = frozenset()) -> np.ndarray:
    """The mix from the files on disk, with numpy only: (2, samples) float32."""
    import soundfile as sf

    stems_dir = project_dir.parent / "stems"
    mix = np.zeros((2, int(SECONDS * RATE)), dtype=np.float64)
    if muted is None:
        muted = {name for name, spec in STEMS.items() if spec[3]}
    for name, (file, gain_db, offset, _, _) in STEMS.items():
        if name in muted or (solo and name not in solo):
            continue
        audio, sr = sf.read(str(stems_dir / file), dtype="float32", always_2d=True)
        assert sr == RATE
        audio = audio.T
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        start = int(round(offset * RATE))
        mix[:, start:start + audio.shape[1]] += 10 ** (gain_db / 20) * audio
    return mix.astype(np.float32)


# -- no device (before any JACK server runs) ---------------------------------------------------------
def test_missing_portaudio_names_the_package_to_install(monkeypatch):
    from bridge.errors import PlaybackError
    from bridge.playback.player import AudioPlayer

    class NoPortAudio:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(PlaybackError, match=r"libportaudio2.*without sound"):
        AudioPlayer()


def test_no_output_device_is_a_clear_error():
    from bridge.errors import PlaybackError
    from bridge.playback.player import AudioPlayer, output_devices

    try:
        devices = output_devices(rescan=True)
    except PlaybackError as e:
        pytest.skip(f"PortAudio is not usable here: {e}")
    if devices:
        pytest.skip(f"this machine has audio outputs ({devices[0].label}); the no-device case needs none")
    with pytest.raises(PlaybackError, match=r"No audio output device.*Preferences ▸ Audio"):
        AudioPlayer()


def test_session_without_a_device_plays_silently_and_says_why(project_dir):
    from bridge.playback.events import AudioUnavailable
    from bridge.playback.player import output_devices
    from bridge.session import Session

    if output_devices(rescan=True):
        pytest.skip("this machine has audio outputs; the no-device case needs none")
    with Session.open(project_dir, audio=True, preview=False, watch=False, analyse=False, autosave=False) as s:
        s.play()
        events = [e for e in s.poll_events() if isinstance(e, AudioUnavailable)]
        assert len(events) == 1 and "No audio output device" in events[0].message
        t0 = s.transport().position_seconds
        time.sleep(0.2)
        assert s.transport().playing and s.transport().position_seconds > t0 + 0.1  # the playhead still runs


# -- a real stream on JACK's dummy backend -----------------------------------------------------------
@pytest.fixture(scope="module")
def jack():
    import shutil

    from bridge.errors import PlaybackError
    from bridge.playback.player import import_sounddevice

    if shutil.which("jack_rec") is None:
        pytest.skip("jack_rec is not installed (Debian: apt-get install jackd2); it records what the stream plays")
    try:
        sd = import_sounddevice()
    except PlaybackError as e:
        pytest.skip(str(e))
    with jack_server("stembridge-audio") as name:
        yield name
        # PortAudio lets go of the server before it stops (else its exit handler aborts the process)
        sd._terminate()
    sd._initialize()


def _jack_connections() -> str:
    return subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, timeout=5).stdout


@contextlib.contextmanager
def recording(path: Path, seconds: float):
    """``jack_rec`` records our stream's two output ports (what reaches the device) for ``seconds``;
    yields once it is connected. Read the file after the block."""
    proc = subprocess.Popen(["jack_rec", "-f", str(path), "-d", str(seconds), "-b", "32",
                             "PortAudio:out_0", "PortAudio:out_1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5.0
        while "jack_rec" not in _jack_connections() and "jackrec" not in _jack_connections():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "jack_rec did not connect within 5 s"
            time.sleep(0.02)
        yield
        proc.wait(timeout=seconds + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _recorded(path: Path) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == RATE
    return audio.T


def _run_length(rec: np.ndarray, start: int, ref: np.ndarray) -> int:
    """How many samples from ``rec[:, start:]`` equal ``ref`` (float32 → 32-bit PCM: within 1e-6)."""
    n = min(rec.shape[1] - start, ref.shape[1])
    bad = np.flatnonzero(np.abs(rec[:, start:start + n] - ref[:, :n]).max(axis=0) > 1e-6)
    return int(bad[0]) if bad.size else n


def _occurrences(rec: np.ndarray, pattern: np.ndarray) -> int:
    """How many times ``pattern`` (channels, n) appears in ``rec`` sample for sample (within 1e-6)."""
    n = pattern.shape[1]
    starts = np.flatnonzero(np.abs(rec[:, : rec.shape[1] - n + 1] - pattern[:, :1]).max(axis=0) <= 1e-6)
    return sum(int(np.abs(rec[:, i:i + n] - pattern).max() <= 1e-6) for i in starts)


def test_the_device_gets_the_mix_from_the_seek_position_and_again_after_a_seek(jack, project_dir, tmp_path):
    from bridge.playback.controller import render_mix
    from bridge.playback.player import AudioPlayer

    project_mix = expected_mix(project_dir)
    assert np.abs(project_mix).max() < 0.85  # below the limiter: the mix is the plain sum
    with AudioPlayer() as player:
        assert player.sample_rate == RATE and player.device.host_api.startswith("JACK")
        from bridge.project import load_project

        project, _ = load_project(project_dir)
        player.set_mix(render_mix(project, project_dir, sample_rate=player.sample_rate))
        player.seek(1.25)
        with recording(tmp_path / "rec.wav", 2.0):
            x0 = player.xruns
            player.play()
            time.sleep(0.5)
            player.seek(0.4)
            time.sleep(0.5)
            player.pause()
            xruns = player.xruns - x0
    rec = _recorded(tmp_path / "rec.wav")
    heard = np.flatnonzero(np.abs(rec).max(axis=0) > 0)
    first = int(heard[0])
    # the first sample played is exactly the mix at 1.25 s, and the mix plays on sample for sample…
    run1 = _run_length(rec, first, project_mix[:, int(1.25 * RATE):])
    if xruns and not (0.4 * RATE < run1 < 0.7 * RATE):
        pytest.skip(f"{xruns} xruns on the dummy JACK backend (machine overloaded) broke the recorded stream")
    assert 0.4 * RATE < run1 < 0.7 * RATE
    # …until the seek: from there on, exactly the mix from 0.4 s
    run2 = _run_length(rec, first + run1, project_mix[:, int(0.4 * RATE):])
    if xruns and not (0.4 * RATE < run2 < 0.7 * RATE):
        pytest.skip(f"{xruns} xruns on the dummy JACK backend (machine overloaded) broke the recorded stream")
    assert 0.4 * RATE < run2 < 0.7 * RATE
    # then the pause: silence to the end of the recording
    if xruns and np.any(rec[:, first + run1 + run2:]):
        pytest.skip(f"{xruns} xruns on the dummy JACK backend (machine overloaded) broke the recorded stream")
    assert not np.any(rec[:, first + run1 + run2:])


def test_a_loop_region_repeats_exactly(jack, project_dir, tmp_path):
    from bridge.playback.player import AudioPlayer

    mix = expected_mix(project_dir)
    a, b = int(0.5 * RATE), int(0.8 * RATE)
    with AudioPlayer() as player:
        player.set_mix(mix)
        player.set_loop(a / RATE, b / RATE)
        player.seek(a / RATE)
        with recording(tmp_path / "loop.wav", 1.5):
            player.play()
            time.sleep(1.0)
            player.pause()
    rec = _recorded(tmp_path / "loop.wav")
    # Each wrap, sample-exact: the loop's last 256 samples followed at once by its first 256. Found
    # wherever they are in the recording rather than as one unbroken run from the start, so a JACK
    # cycle lost to a busy machine (the dummy backend drops one now and then) cannot fail it.
    k = 256
    wrap = np.concatenate([mix[:, b - k:b], mix[:, a:a + k]], axis=1)
    past_end = mix[:, b:b + 2 * k]  # what a loop that did not wrap would play next
    assert _occurrences(rec, wrap) >= 2  # wrapped at least twice in 1 s of a 0.3-s loop
    assert _occurrences(rec, past_end) == 0  # and never played on past the loop's end


def test_position_follows_the_device_clock(jack, project_dir):
    from bridge.playback.player import AudioPlayer

    with AudioPlayer(blocksize=512) as player:
        player.set_mix(expected_mix(project_dir))
        player.seek(0.5)
        player.play()
        # nothing has reached the speaker yet: the position is still the seek position
        assert player.position_s() == pytest.approx(0.5, abs=0.02)
        time.sleep(0.2)
        p0, s0, w0, x0 = player.position_s(), player._stream.time, time.monotonic(), player.xruns
        time.sleep(1.0)
        p1, s1, w1 = player.position_s(), player._stream.time, time.monotonic()
        if player.xruns > x0:
            # JACK's dummy backend runs without real-time priority: on a loaded machine blocks are
            # dropped, the device clock runs on while the song does not (as a listener would hear).
            pytest.skip(f"{player.xruns - x0} xruns on the dummy JACK backend (machine overloaded); timing not judged")
        # one second of the device's clock is one second of song: the position is the device's
        # (within one audio block: on a loaded machine the callback that stamps the block runs late)
        assert p1 - p0 == pytest.approx(s1 - s0, abs=512 / RATE)
        assert p1 - p0 == pytest.approx(w1 - w0, rel=0.03)  # the dummy backend runs near real time
        # the speaker lags the callback by the output latency: the position is behind what was written
        written = player._frame / RATE
        assert p1 < written
        player.pause()
        held = player.position_s()
        time.sleep(0.1)
        assert player.position_s() == held and not player.playing
        # the song's end stops the player at the end
        player.seek(SECONDS - 0.1)
        player.play()
        time.sleep(0.4)
        assert not player.playing and player.position_s() == pytest.approx(SECONDS, abs=1e-6)


def test_session_plays_the_mix_and_the_playhead_follows_the_audio(jack, project_dir, tmp_path):
    from bridge.playback.events import MixReady
    from bridge.session import Session

    with Session.open(project_dir, audio=True, preview=False, watch=False, analyse=False, autosave=False) as s:
        s.seek(1.0)
        s.play()
        player = s.audio.player
        assert player is not None and s.audio.active
        time.sleep(0.3)
        # the transport reads the device's clock: between two reads of it (a loaded machine can
        # pause this thread between any two calls, so no fixed tolerance around one read)
        before, state, after = player.position_s(), s.transport(), player.position_s()
        assert state.playing and before - 0.005 <= state.position_seconds <= after + 0.005
        s.pause()
        assert not player.playing and s.transport().position_seconds == pytest.approx(player.position_s(), abs=1e-6)

        # mute Noise B and solo nothing: the mix is rendered again and the device gets the new one
        s.poll_events()
        s.set_stem_muted("Noise B", True)
        deadline = time.monotonic() + 10
        while not any(isinstance(e, MixReady) for e in s.poll_events()):
            assert time.monotonic() < deadline, "the mix was not re-rendered after the mute"
            time.sleep(0.02)
        s.seek(0.6)
        with recording(tmp_path / "muted.wav", 1.0):
            s.play()
            time.sleep(0.4)
            s.pause()
    rec = _recorded(tmp_path / "muted.wav")
    first = int(np.flatnonzero(np.abs(rec).max(axis=0) > 0)[0])
    want = expected_mix(project_dir, muted={"Tone", "Noise B"})[:, int(0.6 * RATE):]
    # 0.1 s of samples equal to the new mix (without Noise B) is already far beyond chance; a
    # dropout on the dummy JACK backend of a loaded machine cuts a longer run short (measured: 0.16 s)
    assert _run_length(rec, first, want) > 0.1 * RATE


def test_session_solo_and_daw_sync_silence(jack, project_dir):
    from bridge.playback.events import MixReady
    from bridge.session import Session
    from bridge.transport.state import TransportState

    with Session.open(project_dir, audio=True, preview=False, watch=False, analyse=False, autosave=False) as s:
        s.play()
        s.pause()
        s.poll_events()
        s.set_solo({"Noise B"})
        expected = expected_mix(project_dir, solo={"Noise B"})
        # The mix rendered for the first play may still arrive after the solo (a busy machine):
        # wait for the one that holds the solo.
        deadline = time.monotonic() + 10
        while True:
            if any(isinstance(e, MixReady) for e in s.poll_events()):
                mix, _ = s.audio.player._track
                if mix.T.shape == expected.shape and np.allclose(mix.T, expected, atol=1e-6):
                    break
            assert time.monotonic() < deadline, "the soloed mix never reached the player"
            time.sleep(0.02)
        with pytest.raises(Exception, match="no stem named"):
            s.set_solo({"Nope"})
        # a DAW drives the transport: the session stays silent
        s.clock.update(TransportState(playing=True, tempo_bpm=120.0, source="reaper_osc",
                                      received_at=time.monotonic()))
        s.play()
        assert not s.audio.active and not s.audio.player.playing
