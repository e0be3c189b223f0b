"""The default visual response lands on the hits: measured on the decoded export of a click track
whose hit times are known (never on the engine's buffers), and the mapping pieces it is built from.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import write_wav
from test_mapping import make_analysis, make_stem

from bridge.demo.band import Segment, render_band_song
from bridge.export.render import render_project
from bridge.mapping import evaluate_mappings
from bridge.mapping.params import PARAMETERS
from bridge.project import load_project
from bridge.project.create import new_project
from bridge.project.schema import Mapping

FPS = 30


def decoded_motion(path: Path) -> np.ndarray:
    """Mean |grey_k − grey_{k−1}| of the decoded frames (frame 0 → 0)."""
    out, prev = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            grey = frame.to_ndarray(format="gray").astype(np.float32)
            out.append(0.0 if prev is None else float(np.mean(np.abs(grey - prev))))
            prev = grey
    return np.asarray(out)


@pytest.mark.slow
def test_default_render_moves_on_the_frames_that_hold_the_hits(tmp_path):
    sr = 44100
    # A four-on-the-floor kit at 100 BPM (kick on every beat, clap on 2 and 4, open hat on the
    # off-beats) with its hit times known. Beats are 0.6 s = 18 frames apart and every hit sits in
    # the middle of a frame (9.5 frames, …): onset times are known to about one analysis hop
    # (±12 ms), so a response on the right frame passes and one a frame late (smoothing lag, a
    # 30-ms detection latency) fails.
    song = render_band_song([Segment(6, 4, 4, 100.0)], style="four", seed=3, sample_rate=sr, jitter_ms=0.0,
                            lead_in_s=9.5 / FPS, with_bass=False, with_keys=False,
                            options={"hat16": False, "fills": False, "crash": False})
    write_wav(tmp_path / "stems" / "Drums.wav", song.stems["drums"], sr)
    new_project(tmp_path / "p", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "p")
    video = render_project(project, project_dir, tmp_path / "out.mp4", width=160, height=96, fps=str(FPS))
    motion = decoded_motion(video)
    hit_frames = np.unique(np.floor(song.drum_hits_s * FPS).astype(int))
    hit_frames = hit_frames[(hit_frames > 0) & (hit_frames < motion.size - 1)]
    others = np.setdiff1d(np.arange(1, motion.size), np.concatenate([hit_frames, hit_frames + 1]))
    # The event is on the frame that contains the hit — not the frame after it or before it.
    assert np.median(motion[hit_frames]) > 1.5 * np.median(motion[hit_frames + 1])
    assert np.median(motion[hit_frames]) > 1.5 * np.median(motion[hit_frames - 1])
    # Between hits the picture is nearly still compared with a hit.
    assert np.median(motion[hit_frames]) > 4.0 * np.median(motion[others])
    # Every beat (kick, and the clap on 2 and 4) is the largest change of its neighbourhood (±2
    # frames); the off-beat hats are smaller hits and move the picture less (sized by strength).
    beat_frames = np.floor(song.beats_s * FPS).astype(int)
    beat_frames = beat_frames[(beat_frames > 2) & (beat_frames < motion.size - 2)]
    assert np.median(motion[beat_frames]) > 2.0 * np.median(motion[np.setdiff1d(hit_frames, beat_frames)])
    on_peak = [motion[k] == motion[k - 2: k + 3].max() for k in beat_frames]
    hit_frames = beat_frames
    assert np.mean(on_peak) >= 0.9, [(int(k), np.round(motion[k - 2:k + 3], 1).tolist()) for k, ok in zip(hit_frames, on_peak, strict=True) if not ok]


def test_travel_is_integrated_a_hit_steps_it_and_it_stays():
    dur = 4.0
    stem = make_stem("Kick", "drums", dur, onsets_s=[1.0, 2.5])
    analysis = make_analysis([stem], dur)
    maps = [Mapping(source="Kick.onsets", target="travel", amount=0.1, attack_ms=0, release_ms=0)]
    travel = evaluate_mappings(maps, analysis, (), fps=Fraction(FPS)).column("travel")
    step = np.diff(np.concatenate([[0.0], travel]))
    moved = np.flatnonzero(np.abs(step) > 1e-6)
    assert moved.tolist() == [30, 75]  # the frames holding 1.0 s and 2.5 s, and nothing else
    assert travel[29] == 0.0 and travel[30] == pytest.approx(0.1) and travel[-1] == pytest.approx(0.2)
    assert PARAMETERS["travel"].integrated


def test_beat_tick_is_one_frame_per_beat():
    dur = 4.0
    beats = np.array([0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75])
    analysis = make_analysis([make_stem("Kick", "drums", dur)], dur, beats_s=beats)
    maps = [Mapping(source="beat.tick", target="travel", amount=0.05, attack_ms=0, release_ms=0)]
    travel = evaluate_mappings(maps, analysis, (), fps=Fraction(FPS)).column("travel")
    moved = np.flatnonzero(np.diff(np.concatenate([[0.0], travel])) > 1e-6)
    assert moved.tolist() == np.floor(beats * FPS).astype(int).tolist()


def _plucks(times_s, seconds, sr, amplitude, freq_hz):
    """Decaying sine plucks at known times (float32, (1, n))."""
    n = int(seconds * sr)
    out = np.zeros(n, dtype=np.float32)
    t = np.arange(int(0.25 * sr)) / sr
    note = (amplitude * np.sin(2 * np.pi * freq_hz * t) * np.exp(-t / 0.05)).astype(np.float32)
    for s in times_s:
        i = int(round(s * sr))
        out[i:i + note.size] += note[: max(0, min(note.size, n - i))]
    return out[None, :]


def test_mix_onset_is_the_mix_as_heard_loud_stems_count_more(tmp_path):
    """``mix.onset`` answers what the producer hears: a loud guitar's plucks are big events and a
    shaker 34 dB below is small, while each stem's own ``onset`` is normalised to itself. Muting
    the guitar in the project (or turning it down) makes the shaker the mix's loudest part."""
    from bridge.analysis.project import analyze_project
    from bridge.mapping.sources import resolve_source

    sr, seconds = 22050, 8.0
    loud_s = np.arange(0.5, 7.5, 1.0)    # guitar plucks
    quiet_s = np.arange(1.0, 7.5, 1.0)   # shaker hits, half-way between
    write_wav(tmp_path / "stems" / "Guitar.wav", _plucks(loud_s, seconds, sr, 0.5, 330.0), sr)
    write_wav(tmp_path / "stems" / "Shaker.wav", _plucks(quiet_s, seconds, sr, 0.01, 2500.0), sr)
    new_project(tmp_path / "p", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "p")

    def peaks_at(values, times_s, rate):
        idx = np.round(np.asarray(times_s) * rate).astype(int)
        return np.array([values[max(0, i - 3): i + 4].max() for i in idx])

    analysis = analyze_project(project, project_dir)
    mix = resolve_source("mix.onset", analysis)
    loud, quiet = peaks_at(mix.values, loud_s, mix.rate_hz), peaks_at(mix.values, quiet_s, mix.rate_hz)
    # The flux is in dB per band (as librosa's onset strength): a hit 34 dB down still rises well
    # above the floor of its own bands, so it scores about a third of the loud one, not nothing.
    assert np.median(loud) > 2.0 * max(np.median(quiet), 1e-6)
    shaker = resolve_source("Shaker.onset", analysis)
    assert np.median(peaks_at(shaker.values, quiet_s, shaker.rate_hz)) > 0.5  # its own curve: full scale

    muted = project.model_copy(update={"stems": [s.model_copy(update={"muted": s.name == "Guitar"})
                                                 for s in project.stems]})
    analysis = analyze_project(muted, project_dir)
    mix = resolve_source("mix.onset", analysis)
    assert np.median(peaks_at(mix.values, quiet_s, mix.rate_hz)) > 4.0 * max(
        np.median(peaks_at(mix.values, loud_s, mix.rate_hz)), 1e-6)


def test_mix_onset_resolves_notes_closer_than_the_analysis_window(tmp_path):
    """A roll of 32nd notes at 150 BPM (50 ms apart, as trap hi-hat rolls go; closer than the 93 ms
    analysis window) over a bass: ``mix.onset`` must peak on every note, at its time, so the picture
    steps on each. The 93 ms curve the beat tracker uses merges neighbouring notes (a third found)."""
    from bridge.analysis.project import analyze_project
    from bridge.mapping.sources import onset_peaks, resolve_source, robust_normalise

    sr, seconds = 22050, 6.0
    rng = np.random.default_rng(5)
    notes_s = 0.5 + np.arange(96) * 0.05 + rng.uniform(-0.004, 0.004, 96)  # the roll, 4.8 s
    write_wav(tmp_path / "stems" / "Lead.wav", _plucks(notes_s, seconds, sr, 0.4, 880.0), sr)
    write_wav(tmp_path / "stems" / "Bass.wav", _plucks(np.arange(0.5, 5.5, 1.2), seconds, sr, 0.2, 55.0), sr)
    new_project(tmp_path / "p", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "p")
    analysis = analyze_project(project, project_dir)

    def found(values: np.ndarray, rate: float) -> tuple[float, float]:
        """(share of the notes with a peak of the curve within ±12 ms, share of the peaks on a note)."""
        peaks_s = np.flatnonzero(values > 0.1 * values.max()) / rate
        dist = np.abs(notes_s[:, None] - peaks_s[None, :])
        return float(np.mean(dist.min(axis=1) <= 0.012)), float(np.mean(dist.min(axis=0) <= 0.012))

    mix = resolve_source("mix.onset", analysis)
    notes_found, peaks_on_notes = found(mix.values, mix.rate_hz)
    assert notes_found >= 0.95 and peaks_on_notes >= 0.9
    # the same check on the long-window curve of the same mix (what mix.onset was): notes lost
    coarse = onset_peaks(robust_normalise(analysis.mix.curves["onset"]))
    assert found(coarse, mix.rate_hz)[0] < 0.6
