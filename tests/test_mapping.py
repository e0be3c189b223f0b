"""Mappings: sources, follower, curves, resampling to frames, sections and presets.

Truths are analytic: a one-pole's exp(-t/τ) decay, a saw that is 0 on each beat, frame k at
exactly k·1001/30000 s, pitch class 4 = 4/12 of a turn.
"""

from __future__ import annotations

from fractions import Fraction
from math import exp

import numpy as np
import pytest

from bridge.analysis.types import (
    ANALYSIS_HOP,
    ANALYSIS_SAMPLE_RATE,
    BeatGrid,
    SongAnalysis,
    StemFeatures,
)
from bridge.errors import ProjectError
from bridge.mapping import (
    PARAMETER_NAMES,
    PARAMETERS,
    PRESETS,
    apply_curve,
    default_mappings,
    evaluate_mappings,
    resolve_sections,
    robust_normalise,
)
from bridge.project.schema import Mapping, Section, StemSpec

RATE_HZ = ANALYSIS_SAMPLE_RATE / ANALYSIS_HOP  # ≈ 86.13 Hz curve rate


def make_stem(name: str, role: str, duration_s: float, *, onsets_s=(), rng=None, curves=None) -> StemFeatures:
    """Synthetic features: quiet noise floor, given onsets; any curve can be overridden."""
    rng = rng or np.random.default_rng(0)
    n = int(np.ceil(duration_s * RATE_HZ))
    base = {
        "rms": 0.05 + 0.01 * rng.random(n),
        "low": 0.05 + 0.01 * rng.random(n),
        "mid": 0.05 + 0.01 * rng.random(n),
        "high": 0.05 + 0.01 * rng.random(n),
        "onset": rng.random(n),
        "centroid": 1000 + 500 * rng.random(n),
        "chroma": rng.random((12, n)),
        **{part: rng.random(n) for part in ("kick", "snare", "hats")},
    }
    base.update(curves or {})
    base = {k: np.asarray(v, dtype=np.float32) for k, v in base.items()}
    return StemFeatures(name, role, RATE_HZ, base, np.asarray(onsets_s, dtype=np.float64), duration_s)


def make_analysis(stems, duration_s: float, *, beats_s=None, downbeats_s=None, tempo_bpm=120.0, beats_per_bar=4):
    if beats_s is None:
        beats_s = np.arange(0.0, duration_s, 60.0 / tempo_bpm)
    beats_s = np.asarray(beats_s, dtype=np.float64)
    if downbeats_s is None:
        downbeats_s = beats_s[::beats_per_bar]
    grid = BeatGrid(tempo_bpm, beats_s, np.asarray(downbeats_s, dtype=np.float64), beats_per_bar)
    return SongAnalysis(duration_s, grid, [(0.0, duration_s)], {s.name: s for s in stems})


def col(fp, name):
    return fp.column(name).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Follower: release time constant, attack/release asymmetry
# --------------------------------------------------------------------------------------------


def test_onset_release_decays_with_the_one_pole_time_constant():
    t0, release_s = 1.013, 0.25
    an = make_analysis([make_stem("kick", "drums", 4.0, onsets_s=[t0])], 4.0)
    m = Mapping(source="kick.onsets", target="pulse", attack_ms=0, release_ms=release_s * 1000)
    fp = evaluate_mappings([m], an, (), fps=Fraction(50))
    t = fp.times_s()
    y = col(fp, "pulse")
    after = (t >= t0 + 1.0 / RATE_HZ) & (t <= t0 + 1.0)
    expected = np.exp(-(t[after] - t0) / release_s)  # continuous-time one-pole, impulse at t0
    np.testing.assert_allclose(y[after], expected, atol=5e-3)
    k = int(np.argmin(np.abs(t - (t0 + release_s))))
    assert y[k] == pytest.approx(exp(-(t[k] - t0) / release_s), abs=5e-3)
    assert y[k] == pytest.approx(exp(-1.0), abs=0.03)
    assert np.all(y[t < t0 - 0.02] == 0.0)


def test_attack_and_release_are_asymmetric():
    duration = 6.0
    n = int(np.ceil(duration * RATE_HZ))
    ts = np.arange(n) / RATE_HZ
    step = ((ts >= 1.0) & (ts < 3.0)).astype(np.float64)  # 0 → 1 at 1 s, back to 0 at 3 s
    an = make_analysis([make_stem("pad", "other", duration, curves={"rms": step})], duration)
    attack_s, release_s = 0.1, 0.6
    m = Mapping(source="pad.rms", target="detail", attack_ms=attack_s * 1000, release_ms=release_s * 1000)
    fp = evaluate_mappings([m], an, (), fps=Fraction(1000))
    t, y = fp.times_s(), col(fp, "detail")
    rise = t[np.argmax((t >= 1.0) & (y >= 1 - exp(-1)))] - 1.0
    fall = t[np.argmax((t >= 3.0) & (y <= exp(-1) * y[np.searchsorted(t, 3.0) - 1]))] - 3.0
    one_sample = 1.0 / RATE_HZ  # the curve is only known every 11.6 ms
    assert abs(rise - attack_s) <= one_sample + 1e-3
    assert abs(fall - release_s) <= one_sample + 1e-3
    assert fall > 4 * rise


# --------------------------------------------------------------------------------------------
# Curves, amounts, clamps, ranges
# --------------------------------------------------------------------------------------------


def test_curves():
    x = np.linspace(0, 1, 101)
    assert apply_curve(np.array([0.5]), "smoothstep")[0] == pytest.approx(0.5)
    np.testing.assert_allclose(apply_curve(x, "linear"), x)
    e = apply_curve(x, "exp")
    assert e[0] == pytest.approx(0.0) and e[-1] == pytest.approx(1.0)
    assert np.all(np.diff(e) > 0)  # monotonic
    assert e[50] < 0.25  # slow start: well below the diagonal half-way
    s = apply_curve(x, "smoothstep")
    assert np.all(np.diff(s) >= 0) and s[10] < 0.1 and s[90] > 0.9


def test_amounts_sum_per_target_then_clip_to_range_and_clamp():
    an = make_analysis([make_stem("a", "other", 2.0)], 2.0)
    fps = Fraction(25)
    maps = [
        Mapping(source="beat.square", target="zoom", amount=0.0, offset=0.01, attack_ms=0, release_ms=0),
        Mapping(source="beat.square", target="zoom", amount=0.0, offset=0.02, attack_ms=0, release_ms=0),
        Mapping(source="beat.square", target="flash", amount=0.0, offset=5.0, attack_ms=0, release_ms=0),
        Mapping(source="beat.square", target="rotation", amount=0.0, offset=5.0, clamp=(-1.0, 2.0),
                attack_ms=0, release_ms=0),
        Mapping(source="beat.square", target="warp", amount=0.0, offset=0.7, enabled=False),
    ]
    fp = evaluate_mappings(maps, an, (), fps=fps)
    np.testing.assert_allclose(col(fp, "zoom"), 0.03, atol=1e-7)
    np.testing.assert_allclose(col(fp, "flash"), PARAMETERS["flash"].maximum)
    np.testing.assert_allclose(col(fp, "rotation"), 2.0)
    for name in PARAMETER_NAMES:
        if name not in ("zoom", "flash", "rotation"):
            np.testing.assert_allclose(col(fp, name), PARAMETERS[name].neutral)
    assert fp.values.dtype == np.float32 and fp.values.shape == (50, len(PARAMETER_NAMES))


def test_robust_normalisation_ignores_a_single_peak():
    x = np.full(10000, 0.1)
    x[5000] = 10.0
    y = robust_normalise(x)
    assert np.median(y) == pytest.approx(1.0)
    assert robust_normalise(np.zeros(100)).max() == 0.0


# --------------------------------------------------------------------------------------------
# Oscillators follow the detected beats
# --------------------------------------------------------------------------------------------


def test_beat_saw_is_locked_to_drifting_beats():
    # An accelerating grid on 10 ms steps, so every beat is a frame instant at 100 fps.
    beats = np.round(np.cumsum([0.5] + [0.6 - 0.01 * i for i in range(12)]), 2)
    an = make_analysis([make_stem("a", "other", 8.0)], 8.0, beats_s=beats, tempo_bpm=100)
    m = Mapping(source="beat.saw", target="detail", attack_ms=0, release_ms=0)
    fp = evaluate_mappings([m], an, (), fps=Fraction(100))
    y = col(fp, "detail")
    for b0, b1 in zip(beats[:-1], beats[1:], strict=True):
        k0, k1 = int(round(b0 * 100)), int(round(b1 * 100))
        assert y[k0] == pytest.approx(0.0, abs=1e-6)
        assert y[k1 - 1] == pytest.approx(1 - 0.01 / (b1 - b0), abs=1e-6)  # ~1 just before the next
        assert y[(k0 + k1) // 2] == pytest.approx(((k0 + k1) // 2 / 100 - b0) / (b1 - b0), abs=1e-6)
    # Past the last beat the phase runs on at the tempo (100 bpm = 0.6 s).
    k = int(round((beats[-1] + 0.3) * 100))
    assert y[k] == pytest.approx(0.5, abs=1e-6)


def test_bar_oscillators_use_downbeats():
    beats = np.arange(0.0, 12.0, 0.5)
    downbeats = np.array([0.0, 1.5, 3.0, 4.5, 6.0])  # 3/4, downbeats every 3 beats
    an = make_analysis([make_stem("a", "other", 7.0)], 7.0, beats_s=beats, downbeats_s=downbeats, beats_per_bar=3)
    maps = [
        Mapping(source="bar.saw", target="detail", attack_ms=0, release_ms=0),
        Mapping(source="bar.square", target="pulse", attack_ms=0, release_ms=0),
        Mapping(source="bar.tri", target="warp", attack_ms=0, release_ms=0),
    ]
    fp = evaluate_mappings(maps, an, (), fps=Fraction(20))
    t = fp.times_s()
    saw, sq, tri = col(fp, "detail"), col(fp, "pulse"), col(fp, "warp")
    for d in downbeats:
        k = int(round(d * 20))
        assert saw[k] == pytest.approx(0.0, abs=1e-6) and sq[k] == 1.0 and tri[k] == pytest.approx(0.0, abs=1e-6)
    k = int(round(2.0 * 20))  # beat 2 of the 2nd bar: 1/3 of the way
    assert saw[k] == pytest.approx(1 / 3, abs=1e-6)
    assert sq[int(round(3.9 * 20))] == 0.0  # second half of the bar 3.0–4.5
    assert tri[int(round(3.75 * 20))] == pytest.approx(1.0, abs=1e-6)
    assert t[-1] < 7.0


def test_beat_pulse_hits_the_frame_a_beat_falls_in():
    beats = np.arange(0.51, 6.0, 0.5)  # never on a 30 fps frame instant
    an = make_analysis([make_stem("a", "other", 6.0)], 6.0, beats_s=beats)
    fp = evaluate_mappings([Mapping(source="beat.pulse", target="pulse", attack_ms=0, release_ms=0)],
                           an, (), fps=Fraction(30))
    y = col(fp, "pulse")
    for b in beats:
        k = int(np.floor(b * 30))  # the frame on screen when the beat happens
        assert y[k] == 1.0
        assert y[k + 1] < 1.0


# --------------------------------------------------------------------------------------------
# Frames: exact rational fps, windows
# --------------------------------------------------------------------------------------------


def test_ntsc_frame_times_are_exact():
    fps = Fraction(30000, 1001)
    k_hit = 1234
    t_hit = k_hit * 1001 / 30000  # 41.17...; k/30 would put it 1.2 frames off
    an = make_analysis([make_stem("kick", "drums", 42.0, onsets_s=[t_hit])], 42.0)
    m = Mapping(source="kick.onsets", target="flash", attack_ms=0, release_ms=100)
    fp = evaluate_mappings([m], an, (), fps=fps)
    assert len(fp) == int(np.ceil(42.0 * 30000 / 1001))
    np.testing.assert_allclose(fp.times_s(), np.arange(len(fp)) * 1001 / 30000, rtol=0, atol=1e-12)
    y = col(fp, "flash")
    assert y[k_hit - 1] == 0.0
    assert y[k_hit] > 0.85
    assert int(np.argmax(y)) == k_hit
    ten_s = make_analysis([make_stem("a", "other", 10.0)], 10.0)
    assert len(evaluate_mappings([], ten_s, (), fps=Fraction(30))) == 300  # exactly 10 s · 30


def test_window_equals_slice_of_whole_song():
    rng = np.random.default_rng(3)
    dur = 12.0
    stems = [
        make_stem("Kick", "drums", dur, onsets_s=np.sort(rng.uniform(0, dur, 30)), rng=rng),
        make_stem("Bass", "bass", dur, rng=rng),
        make_stem("Keys", "keys", dur, rng=rng),
        make_stem("Vox", "vocals", dur, rng=rng),
    ]
    an = make_analysis(stems, dur, beats_s=np.cumsum(rng.uniform(0.45, 0.55, 30)))
    specs = [StemSpec(name=s.name, path=f"{s.name}.wav", role=s.role) for s in stems]
    maps = default_mappings(specs) + [
        Mapping(source="beat.tri", target="decay", amount=0.2, attack_ms=30, release_ms=300),
        Mapping(source="Keys.centroid", target="prompt_mix", curve="exp", attack_ms=10, release_ms=50),
    ]
    looks = resolve_sections([Section(start=0), Section(start=8, unit="beats")], an.beat_grid, duration_seconds=dur)
    fps = Fraction(30000, 1001)
    whole = evaluate_mappings(maps, an, looks, fps=fps)
    for start, n in ((0, 10), (37, 50), (200, 40), (len(whole) - 5, 5)):
        win = evaluate_mappings(maps, an, looks, fps=fps, start_frame=start, n_frames=n)
        np.testing.assert_array_equal(win.values, whole.values[start:start + n])
        np.testing.assert_array_equal(win.section_index, whole.section_index[start:start + n])
        np.testing.assert_array_equal(win.section_mix, whole.section_mix[start:start + n])
        assert win.start_frame == start


# --------------------------------------------------------------------------------------------
# Sources: chroma, roles, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pitch_class", [0, 4, 11])
def test_chroma_becomes_the_pitch_class_turn(pitch_class):
    n = int(np.ceil(3.0 * RATE_HZ))
    chroma = np.zeros((12, n))
    chroma[pitch_class] = 1.0
    chroma[(pitch_class + 1) % 12] = 0.3  # a neighbour pulls the circular mean towards it
    chroma[(pitch_class - 1) % 12] = 0.3  # …and the other one cancels that
    stem = make_stem("keys", "keys", 3.0, curves={"chroma": chroma, "rms": np.ones(n)})
    an = make_analysis([stem], 3.0)
    fp = evaluate_mappings([Mapping(source="keys.chroma", target="hue", attack_ms=50)], an, (), fps=Fraction(30))
    y = col(fp, "hue")[30:]
    np.testing.assert_allclose(np.minimum(np.abs(y - pitch_class / 12), 1 - np.abs(y - pitch_class / 12)), 0,
                               atol=1e-6)


def test_role_with_several_stems_takes_the_max():
    dur = 4.0
    n = int(np.ceil(dur * RATE_HZ))
    ts = np.arange(n) / RATE_HZ
    first = np.where(ts < 2, 1.0, 0.0)
    second = np.where(ts >= 2, 0.5, 0.0)  # quieter, but each stem is normalised on its own
    stems = [make_stem("Kick", "drums", dur, curves={"rms": first}),
             make_stem("Snare", "drums", dur, curves={"rms": second})]
    an = make_analysis(stems, dur)
    fp = evaluate_mappings([Mapping(source="drums.rms", target="detail", attack_ms=0, release_ms=0)],
                           an, (), fps=Fraction(10))
    y = col(fp, "detail")
    np.testing.assert_allclose(y[2:18], 1.0)
    np.testing.assert_allclose(y[22:38], 1.0)
    # A stem name wins over a role, case-insensitively.
    fp = evaluate_mappings([Mapping(source="snare.rms", target="detail", attack_ms=0, release_ms=0)],
                           an, (), fps=Fraction(10))
    assert col(fp, "detail")[5] == 0.0 and col(fp, "detail")[30] == 1.0
    # stem_roles overrides the analysed role.
    fp = evaluate_mappings([Mapping(source="perc.rms", target="detail", attack_ms=0, release_ms=0)],
                           an, (), fps=Fraction(10), stem_roles={"Snare": "perc"})
    assert col(fp, "detail")[5] == 0.0


def test_unknown_sources_name_the_valid_choices():
    an = make_analysis([make_stem("Drums", "drums", 2.0)], 2.0)
    fps = Fraction(30)
    with pytest.raises(ProjectError) as err:
        evaluate_mappings([Mapping(source="drums.onsett", target="flash")], an, (), fps=fps)
    msg = str(err.value)
    assert "onsett" in msg and all(f in msg for f in ("rms", "low", "onset", "centroid", "chroma", "onsets"))
    with pytest.raises(ProjectError) as err:
        evaluate_mappings([Mapping(source="guitar.rms", target="flash")], an, (), fps=fps)
    assert "guitar" in str(err.value) and "Drums" in str(err.value) and "beat.sin" in str(err.value)
    with pytest.raises(ProjectError) as err:
        evaluate_mappings([Mapping(source="beat.wobble", target="flash")], an, (), fps=fps)
    assert "beat.saw" in str(err.value)


def test_a_source_naming_two_stems_that_differ_only_in_case_is_refused_not_guessed():
    """'DRUMS.rms' with stems 'Drums' and 'drums' took whichever came first; now it says it is
    ambiguous and lists both (as `fx --stem` does), while each exact spelling reads its own stem."""
    dur = 4.0
    n = int(np.ceil(dur * RATE_HZ))
    ts = np.arange(n) / RATE_HZ
    an = make_analysis([make_stem("Drums", "drums", dur, curves={"rms": np.where(ts < 2, 1.0, 0.0)}),
                        make_stem("drums", "drums", dur, curves={"rms": np.where(ts >= 2, 1.0, 0.0)})], dur)
    fps = Fraction(10)
    with pytest.raises(ProjectError) as err:
        evaluate_mappings([Mapping(source="DRUMS.rms", target="detail")], an, (), fps=fps)
    msg = str(err.value)
    assert "'DRUMS'" in msg and "ambiguous" in msg and "'Drums'" in msg and "'drums'" in msg
    for name, loud_at in (("Drums", 5), ("drums", 30)):
        fp = evaluate_mappings([Mapping(source=f"{name}.rms", target="detail", attack_ms=0, release_ms=0)],
                               an, (), fps=fps)
        quiet_at = 35 - loud_at
        assert col(fp, "detail")[loud_at] == 1.0 and col(fp, "detail")[quiet_at] == 0.0, name


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def test_sections_in_beats_follow_the_grid_and_transitions():
    beats = np.array([0.5, 1.0, 1.6, 2.3, 3.1, 4.0])  # slowing down
    grid = BeatGrid(60.0, beats, beats[::2], 2)  # tempo 60 → 1 s per beat past the last one
    secs = [
        Section(name="b", start=2, unit="beats", transition_beats=2),
        Section(name="a", start=0, end=1, unit="beats"),
        Section(name="c", start=7, unit="beats", transition_beats=0),
    ]
    looks = resolve_sections(secs, grid, duration_seconds=9.0)
    assert [s.name for s in looks] == ["a", "b", "c"]
    assert looks[0].start_s == 0.0 and looks[0].end_s == pytest.approx(1.0)  # beat 0 = the top; gap 1.0–1.6
    assert looks[1].start_s == pytest.approx(1.6) and looks[1].end_s == pytest.approx(6.0)  # 4.0 + 2 beats
    assert looks[2].end_s == pytest.approx(9.0)
    assert looks[1].transition_seconds == pytest.approx(3.1 - 1.6)  # beats 2 → 4 on the grid

    times = np.array([0.2, 0.7, 1.3, 1.6, 2.35, 3.1, 5.0, 6.0, 8.9])
    an = make_analysis([make_stem("a", "other", 9.0)], 9.0)
    fps = Fraction(20)
    fp = evaluate_mappings([], an, looks, fps=fps)
    idx = {round(t, 3): (int(fp.section_index[int(round(t * 20))]), float(fp.section_mix[int(round(t * 20))]))
           for t in times}
    assert idx[0.2] == (0, 1.0)
    assert idx[0.7] == (0, 1.0)
    assert idx[1.3][0] == -1
    assert idx[1.6] == (1, 0.0)
    assert idx[2.35][0] == 1 and idx[2.35][1] == pytest.approx(0.5, abs=1e-6)
    assert idx[3.1] == (1, 1.0)
    assert idx[6.0] == (2, 1.0) and idx[8.9] == (2, 1.0)


def test_overlapping_sections_are_cut_at_the_next_start():
    grid = BeatGrid(120.0, np.arange(0, 10, 0.5), np.arange(0, 10, 2.0), 4)
    looks = resolve_sections([Section(name="long", start=1.0, end=8.0), Section(name="inner", start=3.0, end=4.0)],
                             grid, duration_seconds=10.0)
    assert [(s.name, s.start_s, s.end_s) for s in looks] == [("long", 1.0, 3.0), ("inner", 3.0, 4.0)]
    assert looks[1].transition_seconds == pytest.approx(1.0)  # default 4 beats at 120 bpm = 2 s, capped


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

STEM_SETS = [
    [("Drums", "drums"), ("Bass", "bass"), ("Vocals", "vocals"), ("Other", "other")],
    [("Kick", "drums"), ("Snare", "drums"), ("Hats", "drums"), ("Sub", "bass"), ("Pads", "synth")],
    [("piano_rh", "piano"), ("piano_lh", "piano")],
    [("lead", "lead"), ("Guitar.L", "guitar")],
]


@pytest.mark.parametrize("stem_set", STEM_SETS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_only_use_present_stems_and_valid_targets(stem_set, preset):
    specs = [StemSpec(name=n, path=f"{n}.wav", role=r) for n, r in stem_set]
    maps = PRESETS[preset](specs)
    assert maps
    stem_refs = {n for n, _ in stem_set} | {r for _, r in stem_set} | {"beat", "bar", "mix"}
    for m in maps:
        assert m.target in PARAMETER_NAMES
        assert m.source.rpartition(".")[0] in stem_refs, m.source
    dur = 4.0
    an = make_analysis([make_stem(n, r, dur, onsets_s=[1.0, 2.0]) for n, r in stem_set], dur)
    fp = evaluate_mappings(maps, an, (), fps=Fraction(30))  # every source resolves
    assert np.isfinite(fp.values).all()


def test_default_preset_is_musical_for_a_split_kit():
    """The design of the default response (benchmarks/av_sync.py measures it on decoded video):
    hits act with no attack lag, bass and harmony only through slow dimensions."""
    specs = [StemSpec(name=n, path=f"{n}.wav", role=r) for n, r in STEM_SETS[1]]
    maps = default_mappings(specs)
    kick = [m for m in maps if m.source.startswith("Kick.")]
    assert {m.target for m in kick} >= {"strength"}
    assert all(m.attack_ms == 0 for m in kick)
    # the picture steps with the mix's hits (the kit as loud as it is in the mix), no attack lag
    travel = [m for m in maps if m.target == "travel" and m.source == "mix.onset"]
    assert travel and all(m.attack_ms == 0 for m in travel)
    assert any(m.source.startswith("Hats.") and m.target == "detail" for m in maps)
    slow = [m for m in maps if m.source.startswith(("Sub.", "Pads."))]
    assert any(m.source == "Sub.low" and m.target == "warp" for m in slow)
    assert any(m.source == "Pads.chroma" and m.target == "hue" for m in slow)
    assert all(m.target in ("warp", "hue", "saturation") and m.attack_ms >= 100 for m in slow)
    assert any(m.source.startswith("bar.") and m.target == "rotation" for m in maps)
    assert not any(m.source.startswith(("vocals", "Vocals")) for m in maps)


def test_user_presets_save_list_apply_elsewhere_and_delete(tmp_path):
    """A saved preset round-trips through its JSON file; on a project whose drum stem has another
    name the drum sources move to it by role; deleting removes the file."""
    from bridge.mapping.user_presets import (
        delete_user_preset,
        list_user_presets,
        load_user_preset,
        save_user_preset,
    )

    folder = tmp_path / "presets"
    stems = [StemSpec(name="Drums", path="d.wav", role="drums"), StemSpec(name="Bass", path="b.wav", role="bass")]
    mappings = [Mapping(source="Drums.onset", target="zoom", amount=0.3, attack_ms=5, release_ms=120, offset=-0.1),
                Mapping(source="Bass.low", target="warp", amount=0.5, curve="smoothstep"),
                Mapping(source="beat.saw", target="hue", amount=0.2, enabled=False)]
    assert list_user_presets(folder=folder) == []
    path = save_user_preset("My Club Look", mappings, stems, folder=folder)
    assert path.parent == folder and path.is_file()
    assert list_user_presets(folder=folder) == ["My Club Look"]
    assert load_user_preset("my club look", stems, folder=folder) == mappings  # same project: identical
    other = [StemSpec(name="Kit", path="k.wav", role="drums"), StemSpec(name="Bass", path="b.wav", role="bass")]
    moved = load_user_preset("My Club Look", other, folder=folder)
    assert [m.source for m in moved] == ["Kit.onset", "Bass.low", "beat.saw"]
    assert [m.model_dump(exclude={"source"}) for m in moved] == [m.model_dump(exclude={"source"}) for m in mappings]
    with pytest.raises(ProjectError, match="already exists"):
        save_user_preset("my club look", mappings[:1], stems, folder=folder)
    save_user_preset("my club look", mappings[:1], stems, folder=folder, overwrite=True)
    assert load_user_preset("My Club Look", stems, folder=folder) == mappings[:1]
    with pytest.raises(ProjectError, match="shipped preset"):
        save_user_preset("Strobe", mappings, stems, folder=folder)
    assert delete_user_preset("My Club Look", folder=folder) == path
    assert list_user_presets(folder=folder) == [] and not path.exists()
    with pytest.raises(ProjectError, match="no saved mapping preset"):
        load_user_preset("My Club Look", stems, folder=folder)
