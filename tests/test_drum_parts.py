"""Kick, snare and hats found inside one drums stem (bridge.analysis.drum_parts), against the known
times of a loop synthesised here: a pitch-swept sine kick, a snare of shell tone and wire noise, and
high-passed noise hats, each placed at exact sample positions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from bridge.analysis.features import compute_stem_features
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE, SongAnalysis
from bridge.mapping.sources import resolve_source
from bridge.project import schema
from bridge.project.presets import default_mappings, minimal_mappings, strobe_mappings
from bridge.timebase import BeatGrid

SR = ANALYSIS_SAMPLE_RATE
RATE_HZ = SR / 256


def _kick(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.35 * SR)) / SR
    freq = 50.0 + 100.0 * np.exp(-t / 0.03)  # the beater's pitch drop, 150 → 50 Hz
    return np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t / 0.12)


def _snare(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * SR)) / SR
    shell = 0.5 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    sos = scipy.signal.butter(2, [1000.0, 8000.0], btype="bandpass", fs=SR, output="sos")
    wires = scipy.signal.sosfilt(sos, rng.standard_normal(t.size)) * np.exp(-t / 0.07)
    return shell + 1.2 * wires


def _hat(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.06 * SR)) / SR
    sos = scipy.signal.butter(4, 7000.0, btype="highpass", fs=SR, output="sos")
    return 0.5 * scipy.signal.sosfilt(sos, rng.standard_normal(t.size)) * np.exp(-t / 0.015)


def drum_loop(seconds: float = 12.0, tempo_bpm: float = 100.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rock beat: kick on 1 and 3 (and the "and" of 3), snare on 2 and 4, hats on the off-beat
    8ths; in every fourth bar kick and snare hit together on 1. Returns (mono audio, part → hit times)."""
    rng = np.random.default_rng(3)
    beat = 60.0 / tempo_bpm
    hits: dict[str, list[float]] = {"kick": [], "snare": [], "hats": []}
    start = 0.25
    n_beats = int((seconds - 1.0) / beat)
    for b in range(n_beats):
        at = start + b * beat
        pos, bar = b % 4, b // 4
        if pos in (0, 2):
            hits["kick"].append(at)
        if pos == 2:
            hits["kick"].append(at + beat / 2)
        if pos in (1, 3) or (pos == 0 and bar % 4 == 3):
            hits["snare"].append(at)
        hits["hats"].append(at + beat / 2)
    y = np.zeros(int(seconds * SR))
    make = {"kick": _kick, "snare": _snare, "hats": _hat}
    level = {"kick": 0.8, "snare": 0.5, "hats": 0.25}
    for part, times in hits.items():
        for t in times:
            x = level[part] * make[part](rng)
            a = int(round(t * SR))
            y[a:a + x.size] += x[: y.size - a]
    y *= 0.9 / np.abs(y).max()
    return y.astype(np.float32), {p: np.asarray(sorted(v)) for p, v in hits.items()}


def _alone(times: np.ndarray, truth: dict[str, np.ndarray], part: str) -> np.ndarray:
    others = np.concatenate([truth[q] for q in truth if q != part])
    return times[np.min(np.abs(times[:, None] - others[None, :]), axis=1) > 0.03]


def _peak_near(curve: np.ndarray, t: float) -> float:
    f = int(round(t * RATE_HZ))
    return float(curve[max(0, f - 2):f + 3].max())


@pytest.fixture(scope="module")
def loop():
    audio, truth = drum_loop()
    return compute_stem_features(audio, name="Drums", role="drums"), truth


@pytest.mark.parametrize("part", ["kick", "snare", "hats"])
def test_each_part_rises_on_its_own_hits_and_not_on_the_others(loop, part):
    feats, truth = loop
    curve = feats.curves[part]
    # (a soft hat struck with a loud kick may vanish into the kick: drum_parts' known limit)
    own = np.array([_peak_near(curve, t) for t in _alone(truth[part], truth, part)])
    others = np.array([_peak_near(curve, t) for q in truth if q != part for t in _alone(truth[q], truth, q)])
    # every own hit is seen, and stands well above whatever leaks in at the other parts' hits
    assert np.all(own > 0.0)
    assert np.median(others) < 0.15 * np.median(own)
    assert np.percentile(own, 10) > np.percentile(others, 90)


def test_a_kick_and_a_snare_struck_together_show_in_both(loop):
    feats, truth = loop
    both = truth["kick"][np.min(np.abs(truth["kick"][:, None] - truth["snare"][None, :]), axis=1) < 1e-6]
    assert both.size >= 1
    for part in ("kick", "snare"):
        typical = np.median([_peak_near(feats.curves[part], t) for t in truth[part]])
        assert all(_peak_near(feats.curves[part], t) > 0.4 * typical for t in both)


def test_part_peaks_sit_on_the_frames_of_the_hits(loop):
    """The part curves share the ``onset`` curve's timing: each hit's peak within two frames (23 ms)."""
    feats, truth = loop
    for part in ("kick", "snare", "hats"):
        curve = feats.curves[part]
        for t in _alone(truth[part], truth, part):
            f = int(round(t * RATE_HZ))
            lo = max(0, f - 6)
            assert abs(lo + int(np.argmax(curve[lo:f + 7])) - f) <= 2, (part, t)


def test_drums_kick_as_a_mapping_source_is_one_frame_per_kick(loop):
    feats, truth = loop
    grid = BeatGrid(100.0, np.arange(0.25, 11.0, 0.6), np.arange(0.25, 11.0, 2.4), 4)
    analysis = SongAnalysis(feats.duration_seconds, grid, [(0.0, feats.duration_seconds)], {"Drums": feats})
    src = resolve_source("drums.kick", analysis)  # by role
    assert src.stems == ("Drums",) and src.transient
    loud = np.flatnonzero(src.values > 0.5)
    kicks = np.round(truth["kick"] * RATE_HZ).astype(int)
    # every kick has a strong peak within two frames, and every strong peak is a kick
    assert all(np.min(np.abs(loud - k)) <= 2 for k in kicks)
    assert all(np.min(np.abs(kicks - f)) <= 2 for f in loud)


def test_presets_drive_a_kit_stems_parts():
    """A kit bounced as one stem gets what bounced kick/snare/hats stems get: its kick and snare
    drive the diffusion strength and its hats the sparkle; strobe punches on the kick and flashes
    on the snare; minimal pulses on the kick."""
    stems = [schema.StemSpec(name="Drums", path="drums.wav", role="drums"),
             schema.StemSpec(name="Bass", path="bass.wav", role="bass")]
    default = {(m.source, m.target) for m in default_mappings(stems)}
    assert {("Drums.kick", "strength"), ("Drums.snare", "strength"), ("Drums.hats", "detail")} <= default
    strobe = {(m.source, m.target) for m in strobe_mappings(stems)}
    assert {("Drums.kick", "zoom"), ("Drums.kick", "pulse"), ("Drums.snare", "flash"), ("Drums.hats", "detail")} <= strobe
    assert ("Drums.kick", "pulse") in {(m.source, m.target) for m in minimal_mappings(stems)}
    # with the hats bounced apart, the hats stem keeps the sparkle
    apart = stems + [schema.StemSpec(name="Hats", path="hats.wav", role="drums")]
    assert not any(m.source == "Drums.hats" for m in default_mappings(apart))


def test_strobe_on_a_one_stem_kit_flashes_on_the_snare_and_punches_on_the_kick(tmp_path):
    """End to end, on the decoded export: a kit bounced as one "Drums" stem, the strobe preset. The
    frame that holds each snare hit turns bright; the kick's frames move (zoom, pulse) without the
    flash; the hats neither flash nor move the picture much (before, every hit flashed, hats too)."""
    import av
    import soundfile as sf

    from bridge.export.render import render_project
    from bridge.project.create import new_project
    from bridge.project.store import save_project

    audio, truth = drum_loop(seconds=6.0)
    (tmp_path / "stems").mkdir()
    sf.write(tmp_path / "stems" / "Drums.wav", audio, SR)
    project = new_project(tmp_path / "proj", tmp_path / "stems").project
    project = project.model_copy(update={"mappings": strobe_mappings(project.stems)})
    save_project(project, tmp_path / "proj")
    fps = 30
    out = render_project(project, tmp_path / "proj", tmp_path / "out.mp4", width=160, height=90, fps=fps,
                         engine_name="procedural")
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="gray").astype(np.float64) for f in container.decode(video=0)]
    luma = np.array([f.mean() for f in frames])
    motion = np.r_[0.0, [np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))]]

    def frames_of(part: str) -> np.ndarray:
        f = np.floor(_alone(truth[part], truth, part) * fps + 1e-9).astype(int)
        return f[(f >= 1) & (f < len(frames))]

    jump = {p: float(np.mean(luma[frames_of(p)] - luma[frames_of(p) - 1])) for p in ("kick", "snare", "hats")}
    moved = {p: float(np.mean(motion[frames_of(p)])) for p in ("kick", "snare", "hats")}
    assert jump["snare"] > 40.0, jump
    assert jump["kick"] < 0.4 * jump["snare"] and jump["hats"] < 0.2 * jump["snare"], jump
    assert moved["kick"] > 3.0 * np.median(motion), (moved, np.median(motion))
    assert moved["hats"] < 0.5 * moved["kick"], moved
