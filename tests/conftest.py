"""Shared fixtures: seeded signals, the shared real-music folder, tmp projects."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: The synthetic Session / preview project's fixtures (``built``, ``project_dir``).
pytest_plugins = ("preview_project",)



@pytest.fixture(autouse=True)
def _own_calibration_file(tmp_path_factory, monkeypatch):
    """Latency offsets calibrated on this machine must not reach the tests (nor tests write there)."""
    monkeypatch.setenv("STEMBRIDGE_CALIBRATION_FILE",
                       str(tmp_path_factory.mktemp("calibration") / "sync_latency.json"))


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason (users' clones don't have it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not available: {path} (only present in the developers' checkout)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    """Write float32 (channels, samples) audio with soundfile (independent of the code under test)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32).T, sample_rate, subtype=subtype)
    return path


def sine(freq_hz: float, seconds: float, sample_rate: int, amplitude: float = 0.5, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.tile(x, (channels, 1))


def click_track(tempo_bpm: float, seconds: float, sample_rate: int, *, beats_per_bar: int = 4,
                first_beat_s: float = 0.0, channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Decaying noise-burst clicks on every beat (downbeats louder). Returns (audio, beat_times_s)."""
    gen = np.random.default_rng(7)
    n = int(round(seconds * sample_rate))
    audio = np.zeros(n, dtype=np.float32)
    period = 60.0 / tempo_bpm
    beats = np.arange(first_beat_s, seconds - 0.05, period)
    burst_len = int(0.03 * sample_rate)
    env = np.exp(-np.arange(burst_len) / (0.006 * sample_rate)).astype(np.float32)
    for i, t in enumerate(beats):
        start = int(round(t * sample_rate))
        amp = 0.9 if i % beats_per_bar == 0 else 0.5
        seg = gen.standard_normal(burst_len).astype(np.float32) * env * amp
        end = min(n, start + burst_len)
        audio[start:end] += seg[: end - start]
    return np.tile(audio, (channels, 1)), beats


@contextlib.contextmanager
def jack_server(prefix: str = "stembridge-test"):
    """Our own JACK server with the dummy backend (real MIDI ports without ALSA); skips the test
    with the reason when jackd is missing or does not come up. Yields the server name."""
    from bridge.errors import TransportError
    from bridge.transport.midi_io import list_midi_ports

    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (Debian: apt-get install jackd2); without ALSA or JACK "
                    "there are no real MIDI ports to test")
    name = f"{prefix}-{os.getpid()}"
    mp = pytest.MonkeyPatch()
    mp.setenv("JACK_DEFAULT_SERVER", name)  # our own server, never the user's
    mp.setenv("JACK_NO_START_SERVER", "1")
    proc = subprocess.Popen(
        [jackd, "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 8.0
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
                pytest.skip(f"jackd (dummy backend) did not start: {err}")
            try:
                list_midi_ports(api="jack", output=True)
                break
            except TransportError:
                if time.monotonic() > deadline:
                    pytest.skip("jackd (dummy backend) did not accept clients within 8 s")
                time.sleep(0.1)
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        mp.undo()


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """An X server on a free display number (Xvfb picks it and writes it to the pipe); skips the
    test when Xvfb is missing or does not start. The caller terminates the process."""
    if shutil.which("Xvfb") is None:
        pytest.skip("no Xvfb here (Debian: apt install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x600x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.skip("Xvfb did not start here")
    return proc, f":{number}"


def write_midi(path: Path, events, tpq: int = 480) -> Path:
    """A type-1 MIDI file with one track of (absolute tick, message) events (mido, not our code)."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=tpq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid.save(str(path))
    return path


def gl_problem() -> str | None:
    """Why no OpenGL 3.3 context can be made here (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri), or None."""
    from bridge.errors import RenderError
    from bridge.gl import create_gl_context

    try:
        create_gl_context().release()
    except RenderError as e:
        return str(e)
    return None


def require_gl() -> None:
    """Skip the calling test, with the reason, when no OpenGL 3.3 context can be made."""
    problem = gl_problem()
    if problem is not None:
        pytest.skip(f"no OpenGL 3.3 context here: {problem}")
