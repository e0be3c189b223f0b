"""A small synthetic project for the Session / preview tests: 8 s at a constant 120 BPM.

Stems with known content (written with soundfile, independent of the code under test):
* ``Song Drums.wav``: a click on every beat (tests/conftest.click_track);
* ``Song Bass.wav``: a 55 Hz sine plucked on every beat;
* ``Song Vocals.wav``: a 330 Hz tone with harmonics, present only between VOCALS_SPAN_S — so a
  mapping from it changes only part of the song.

Sections are explicit (0–4 s, 4 s–end) and the tempo is the project's (no beat tracking), so the
keyframes sit exactly every 15 frames at 30 fps. ``build_project`` analyses it once so the cache is
warm; tests copy the folder (``copy_project``) and open their own Session on the copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import click_track, write_wav

SAMPLE_RATE = 22050
SECONDS = 8.0
TEMPO_BPM = 120.0
FPS = 30
VOCALS_SPAN_S = (4.0, 8.0)


def bass_audio() -> np.ndarray:
    n = int(SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    beat = 60.0 / TEMPO_BPM
    env = np.exp(-(t % beat) / 0.15)
    x = (0.6 * env * np.sin(2 * np.pi * 55.0 * t)).astype(np.float32)
    return np.tile(x, (2, 1))


def vocals_audio(span_s: tuple[float, float] = VOCALS_SPAN_S, *, freq_hz: float = 330.0) -> np.ndarray:
    n = int(SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * freq_hz * h * t) / h for h in (1, 2, 3))
    gate = ((t >= span_s[0]) & (t < span_s[1])).astype(np.float64)
    # 20 ms fades so the gate itself is not a click
    ramp = int(0.02 * SAMPLE_RATE)
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    x = (0.3 * gate * tone * (0.8 + 0.2 * np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)
    return np.tile(x, (2, 1))


def write_stems(stems_dir: Path) -> dict[str, Path]:
    drums, _ = click_track(TEMPO_BPM, SECONDS, SAMPLE_RATE)
    return {
        "Drums": write_wav(stems_dir / "Song Drums.wav", drums, SAMPLE_RATE),
        "Bass": write_wav(stems_dir / "Song Bass.wav", bass_audio(), SAMPLE_RATE),
        "Vocals": write_wav(stems_dir / "Song Vocals.wav", vocals_audio(), SAMPLE_RATE),
    }


def build_project(root: Path) -> Path:
    """Stems in ``root/stems``, project in ``root/project`` (analysed once). Returns the project dir."""
    from bridge.analysis.project import analyze_project
    from bridge.project import RenderSettings, Section, TempoSettings, load_project, save_project
    from bridge.project.create import new_project

    write_stems(root / "stems")
    result = new_project(root / "project", root / "stems", name="synthetic",
                         render=RenderSettings(width=320, height=180, fps=str(FPS)),
                         tempo=TempoSettings(source="constant", tempo_bpm=TEMPO_BPM, beats_per_bar=4))
    project = result.project.model_copy(update={"sections": [
        Section(name="intro", start=0.0, end=4.0, seed=1, prompt="a calm sea"),
        Section(name="verse", start=4.0, seed=2, prompt="a storm"),
    ]})
    save_project(project, root / "project")
    project, project_dir = load_project(root / "project")
    analyze_project(project, project_dir)
    return project_dir


def copy_project(src_root: Path, dst_root: Path) -> Path:
    """Copy stems + project (+ its analysis cache) keeping their relative layout; returns the project dir."""
    shutil.copytree(src_root, dst_root, dirs_exist_ok=True)
    return dst_root / "project"


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A complete 24-bit WAV file in memory (what a DAW leaves on disk once a bounce finishes)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, dtype=np.float32).T, sample_rate, subtype="PCM_24", format="WAV")
    return buf.getvalue()


# Fixtures for the test modules that import them: the project is built (and analysed) once per
# module; every test gets its own copy.
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    build_project(root)
    return root


@pytest.fixture
def project_dir(built, tmp_path) -> Path:
    return copy_project(built, tmp_path / "copy")
