"""Plugin hosting (issue 15): the scan in a child process, chains on stems and on the export mix.

Real components only: Debian's zam-plugins VST3s in /usr/lib/vst3 (tests that need them skip when
they are absent), pedalboard's built-ins, bundles built here with a garbage, crashing or hanging
binary, and seeded synthetic signals whose answers come from physics or from pedalboard run directly.
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

from bridge.errors import PluginError
from bridge.plugins.chain import apply_chain, build_plugin, chain_fingerprint
from bridge.plugins.scan import known_plugins, scan_plugins
from bridge.project.schema import FxSlot

ZAM = Path("/usr/lib/vst3")
ZAMCOMP = ZAM / "ZamComp.vst3"
needs_zam = pytest.mark.skipif(
    not ZAMCOMP.exists(), reason="zam-plugins VST3s not installed (apt-get install zam-plugins puts them in /usr/lib/vst3)")
SR = 44100


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own user cache folder (the scan cache lives there)."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def noise(seconds: float = 1.0, channels: int = 2, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def fake_bundle(folder: Path, name: str, binary: bytes) -> Path:
    """A VST3 bundle laid out as on Linux (NAME.vst3/Contents/x86_64-linux/NAME.so)."""
    so = folder / f"{name}.vst3" / "Contents" / "x86_64-linux" / f"{name}.so"
    so.parent.mkdir(parents=True)
    so.write_bytes(binary)
    return so.parents[2]


def compiled_bundle(folder: Path, name: str, constructor_body: str) -> Path:
    """A bundle whose shared library runs ``constructor_body`` as soon as it is loaded."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) to build a misbehaving plugin binary")
    src = folder / f"{name}.c"
    src.write_text("#include <signal.h>\n#include <unistd.h>\n"
                   f"__attribute__((constructor)) static void on_load(void) {{ {constructor_body} }}\n")
    bundle = fake_bundle(folder, name, b"")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(next(bundle.rglob("*.so"))), str(src)], check=True)
    src.unlink()
    return bundle


def copy_zamcomp(folder: Path) -> Path:
    return Path(shutil.copytree(ZAMCOMP, folder / "ZamComp.vst3"))


# --- scan ----------------------------------------------------------------------------------------

@needs_zam
def test_scan_finds_the_zam_vst3s(tmp_path):
    cache = tmp_path / "plugins.json"
    # ZamVerb needs minutes to load (it builds its convolution at load time): with a short timeout
    # it is the scan's real "hanging plugin", blocklisted while every other bundle is still found.
    result = scan_plugins([ZAM], standard=False, timeout_s=6, cache_file=cache)
    names = {p.name for p in result.plugins}
    assert {"ZamComp", "ZamCompX2", "ZamDelay", "ZamGEQ31"} <= names
    assert len(result.plugins) + len(result.failures) >= 15
    comp = next(p for p in result.plugins if p.name == "ZamComp")
    assert comp.path == str(ZAMCOMP) and comp.format == "VST3" and comp.manufacturer
    threshold = next(d for d in comp.parameters if d["name"] == "threshold_db")
    assert threshold["units"] == "dB" and threshold["min"] == -80.0 and threshold["max"] == 0.0
    for failure in result.failures:
        assert failure.reason  # every skipped bundle says why
        if "no answer" in failure.reason:  # a slow one is told how to get in
            assert "hung while loading, or is very slow" in failure.reason
            assert "stembridge plugins scan --rescan --timeout 300" in failure.reason
    if (ZAM / "ZamVerb.vst3").exists():  # found, or skipped with a reason: never silently lost
        assert "ZamVerb" in names or str(ZAM / "ZamVerb.vst3") in {f.path for f in result.failures}
    # The cache answers the next scan without loading anything, and `known_plugins` reads it.
    again = scan_plugins([ZAM], standard=False, timeout_s=6, cache_file=cache)
    assert again.probed == 0 and {p.name for p in again.plugins} == names
    assert {p.name for p in known_plugins(cache).plugins} == names


@needs_zam
def test_garbage_bundle_is_reported_blocklisted_and_the_scan_continues(tmp_path):
    folder = tmp_path / "plugins"
    rng = np.random.default_rng(3)
    garbage = fake_bundle(folder, "Garbage", rng.integers(0, 256, 8192, dtype=np.uint8).tobytes())
    copy_zamcomp(folder)
    cache = tmp_path / "plugins.json"

    result = scan_plugins([folder], standard=False, timeout_s=10, cache_file=cache)
    assert [p.name for p in result.plugins] == ["ZamComp"]
    assert [f.path for f in result.failures] == [str(garbage)]
    assert "could not load" in result.failures[0].reason

    # Blocklisted: an unchanged bundle is not loaded again ...
    again = scan_plugins([folder], standard=False, timeout_s=10, cache_file=cache)
    assert again.probed == 0 and [f.path for f in again.failures] == [str(garbage)]
    # ... until it changes, or a rescan is asked for.
    so = next(garbage.rglob("*.so"))
    os.utime(so, ns=(so.stat().st_mtime_ns + 10**9,) * 2)
    assert scan_plugins([folder], standard=False, timeout_s=10, cache_file=cache).probed == 1
    assert scan_plugins([folder], standard=False, timeout_s=10, cache_file=cache, rescan=True).probed == 2


@needs_zam
def test_crashing_and_hanging_plugins_do_not_take_the_scan_down(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    crash = compiled_bundle(folder, "Crash", "raise(SIGSEGV);")
    hang = compiled_bundle(folder, "Hang", "sleep(600);")
    copy_zamcomp(folder)
    result = scan_plugins([folder], standard=False, timeout_s=3, workers=1, cache_file=tmp_path / "p.json")
    reasons = {f.path: f.reason for f in result.failures}
    assert "crashed" in reasons[str(crash)] and "SIGSEGV" in reasons[str(crash)]
    assert "hung" in reasons[str(hang)]
    assert [p.name for p in result.plugins] == ["ZamComp"]  # found by a fresh child after both


def test_user_folders_are_remembered(tmp_path):
    folder = tmp_path / "mine"
    garbage = fake_bundle(folder, "Garbage", b"not a plugin")
    cache = tmp_path / "plugins.json"
    scan_plugins([folder], standard=False, cache_file=cache)
    # A later scan includes the folder added before.
    result = scan_plugins(standard=False, cache_file=cache)
    assert str(garbage) in {f.path for f in result.failures}
    assert str(folder.resolve()) in json.loads(cache.read_text())["user_folders"]


# --- chains --------------------------------------------------------------------------------------

@needs_zam
def test_zamcomp_chain_equals_pedalboard_run_directly():
    import pedalboard

    audio = noise(seconds=1.0, channels=2, seed=1)
    slot = FxSlot(plugin=str(ZAMCOMP), parameters={"threshold_db": -30.0, "ratio": 8.0, "attack_ms": 2.0})
    result = apply_chain(audio, SR, [slot])
    assert result.problems == []

    direct = pedalboard.load_plugin(str(ZAMCOMP))
    direct.threshold_db, direct.ratio, direct.attack_ms = -30.0, 8.0, 2.0
    # ZamComp is a mono plugin: a DAW runs it dual-mono on a stereo track, each side on its own.
    expected = np.concatenate([direct.process(audio[c:c + 1], SR, reset=True) for c in range(2)])
    np.testing.assert_array_equal(result.audio, expected)
    # and it compresses: 8:1 above -30 dBFS on noise at about -10 dBFS RMS
    assert np.sqrt(np.mean(result.audio**2)) < 0.5 * np.sqrt(np.mean(audio**2))


@needs_zam
def test_loading_a_plugin_leaves_the_process_float_mode_as_it_was():
    """ZamComp's library (built with -ffast-math) switches the CPU to flush subnormal numbers to
    zero when it loads, for the whole process: every later computation then ran in another mode,
    and hypothesis refused to run the fuzz tests after a GUI test had loaded it. A fresh process
    (a library loads once per process) checks IEEE arithmetic itself before and after."""
    code = (
        "import numpy as np\n"
        "from bridge.plugins.chain import build_plugin\n"
        "from bridge.project.schema import FxSlot\n"
        "tiny = np.array([5e-324])\n"  # the smallest subnormal double
        "before = bool((tiny * 1.0)[0] != 0)\n"
        f"build_plugin(FxSlot(plugin={str(ZAMCOMP)!r}))\n"
        "print(before, bool((tiny * 1.0)[0] != 0))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(repo)}, check=True).stdout.split()
    assert out[-2:] == ["True", "True"]


@needs_zam
def test_captured_raw_state_restores_the_plugin():
    from bridge.plugins.edit import make_slot

    slot = make_slot(str(ZAMCOMP), parameters={"threshold_db": -40.0, "ratio": 10.0})
    assert slot.name == "ZamComp" and slot.raw_state
    # The state alone (no named parameters) brings the settings back.
    rebuilt = build_plugin(slot.model_copy(update={"parameters": {}}))
    assert rebuilt.threshold_db == pytest.approx(-40.0) and rebuilt.ratio == pytest.approx(10.0, abs=0.01)


@needs_zam
def test_plugin_latency_is_compensated():
    import pedalboard

    maxim = ZAM / "ZaMaximX2.vst3"
    if not maxim.exists():
        pytest.skip("ZaMaximX2.vst3 not installed")
    assert pedalboard.load_plugin(str(maxim)).reported_latency_samples > 0  # a look-ahead limiter
    audio = np.zeros((2, SR // 2), dtype=np.float32)
    audio[:, 5000] = 0.25
    out = apply_chain(audio, SR, [FxSlot(plugin=str(maxim))]).audio
    assert int(np.argmax(np.abs(out[0]))) == 5000


def test_failing_slots_are_bypassed_and_named():
    audio = noise(seconds=0.5)
    slots = [
        FxSlot(plugin="/nowhere/GoneEQ.vst3", name="GoneEQ"),           # not installed here
        FxSlot(plugin="Gain", parameters={"gain_db": 1000.0}),          # overflows to inf
        FxSlot(plugin="LowpassFilter", parameters={"no_such": 1.0}),    # unknown parameter
        FxSlot(plugin="Gain", parameters={"gain_db": -6.0}),            # the one that runs
    ]
    result = apply_chain(audio, SR, slots, where="stem 'Bass'")
    assert len(result.problems) == 3
    assert "GoneEQ" in result.problems[0] and "not installed" in result.problems[0]
    assert "'Gain'" in result.problems[1] and "NaN or infinite" in result.problems[1]
    assert "no_such" in result.problems[2] and "cutoff_frequency_hz" in result.problems[2]
    assert all(p.startswith("stem 'Bass'") for p in result.problems)
    np.testing.assert_allclose(result.audio, audio * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)


def test_wet_dry_and_bypass():
    audio = noise(seconds=0.5)
    half = apply_chain(audio, SR, [FxSlot(plugin="Gain", parameters={"gain_db": -120.0}, mix=0.25)]).audio
    np.testing.assert_allclose(half, 0.75 * audio, atol=1e-6)
    same = apply_chain(audio, SR, [FxSlot(plugin="Gain", parameters={"gain_db": -20.0}, bypass=True)]).audio
    np.testing.assert_array_equal(same, audio)
    assert chain_fingerprint([FxSlot(plugin="Gain", bypass=True)]) == []


def test_tempo_synced_delay_uses_the_song_tempo():
    audio = np.zeros((1, SR), dtype=np.float32)
    audio[0, 100] = 1.0
    slot = FxSlot(plugin="Delay", parameters={"delay_beats": 0.5, "feedback": 0.0, "mix": 1.0})
    out = apply_chain(audio, SR, [slot], tempo_bpm=120.0).audio  # half a beat at 120 BPM = 0.25 s
    assert int(np.argmax(np.abs(out[0]))) == 100 + SR // 4
    assert "tempo" in apply_chain(audio, SR, [slot]).problems[0]


def test_tempo_synced_delay_gets_the_detected_tempo_when_the_project_sets_none(tmp_path, caplog):
    """Most projects detect their tempo: a delay in beats must get it (not be bypassed for want of
    one), in the analysis and in the export mix alike — the tempo detected with the delay off."""
    from bridge.analysis.project import analyze_project, fx_tempo_bpm
    from bridge.export.render import mix_project_audio
    from bridge.project import StemSpec, TempoSettings, save_project
    from bridge.project.schema import Project
    from bridge.stems.load import load_audio
    from tests.conftest import write_wav

    # 120 BPM: a kick on every beat (0.5 s), a noise snare on beats 2 and 4
    n = 8 * SR
    t = np.arange(n) / SR
    kick = 0.6 * np.sin(2 * np.pi * 55 * t) * np.exp(-12 * (t % 0.5))
    snare = 0.4 * np.random.default_rng(2).standard_normal(n) * np.exp(-25 * ((t - 0.5) % 1.0))
    write_wav(tmp_path / "stems" / "kick.wav", np.stack([kick] * 2).astype(np.float32), SR)
    write_wav(tmp_path / "stems" / "snare.wav", np.stack([snare] * 2).astype(np.float32), SR)
    echo = FxSlot(plugin="Delay", parameters={"delay_beats": 0.5, "feedback": 0.0, "mix": 0.5})
    project = Project(name="echo", sample_rate=SR, tempo=TempoSettings(source="detect"),
                      stems=[StemSpec(name="Hats", path="stems/snare.wav", role="drums", fx=[echo]),
                             StemSpec(name="Raw", path="stems/kick.wav", role="drums")])
    save_project(project, tmp_path)
    assert fx_tempo_bpm(project.model_copy(update={"stems": [project.stems[1]]}), tmp_path) is None  # none needed
    with caplog.at_level("WARNING"):
        analysis = analyze_project(project, tmp_path, max_workers=1)
        bpm = fx_tempo_bpm(project, tmp_path)
        out: dict = {}
        mix_project_audio(project, tmp_path, sample_rate=SR, duration_seconds=8.0, stems_out=out)
    assert not [r for r in caplog.records if "bypassed" in r.getMessage()]
    assert bpm == pytest.approx(120.0, rel=0.02) and analysis.beat_grid.tempo_bpm == pytest.approx(bpm, rel=0.02)
    # the echo half a beat later, at that tempo, in the export mix's stem …
    raw = load_audio(tmp_path / "stems" / "snare.wav", sample_rate=SR)
    import pedalboard

    delay = pedalboard.Delay(delay_seconds=30.0 / bpm, feedback=0.0, mix=0.5)
    np.testing.assert_allclose(out["Hats"], delay.process(raw, SR).mean(axis=0), atol=1e-5)
    # … and in the analysis: the echo, half a beat after each snare hit, is an onset there too
    onsets = np.asarray(analysis.stems["Hats"].onsets_s)
    hits = np.arange(0.5, 7.5, 1.0)
    assert all(np.min(np.abs(onsets - (h + 30.0 / bpm))) < 0.03 for h in hits)


@pytest.mark.parametrize("meter, tempo_bpm, factor, quarter_bpm", [
    (None, 100.0, 1.0, 100.0), ("4/4", 100.0, 2.0, 200.0),
    ("6/8", 60.0, 1.0, 90.0),  # 60 dotted quarters a minute = 90 quarters
    ("7/8", 210.0, 1.0, 105.0),  # 210 eighths a minute = 105 quarters
])
def test_a_synced_delay_counts_quarter_notes_whatever_the_meter(meter, tempo_bpm, factor, quarter_bpm):
    """The producer's tempo is in the beats they tap (dotted quarters in 6/8, eighths in 7/8, after
    ×2/÷2); a delay of one beat is a quarter note, as a DAW's synced delay: 60 / quarter_bpm s."""
    from bridge.plugins.chain import chain_tempo_bpm
    from bridge.project.schema import Project, RhythmCorrection

    project = Project(name="p", rhythm=RhythmCorrection(tempo_bpm=tempo_bpm, meter=meter, tempo_factor=factor))
    assert chain_tempo_bpm(project) == pytest.approx(quarter_bpm)
    audio = np.zeros((1, SR), dtype=np.float32)
    audio[0, 100] = 1.0
    slot = FxSlot(plugin="Delay", parameters={"delay_beats": 1.0, "feedback": 0.0, "mix": 1.0})
    out = apply_chain(audio, SR, [slot], tempo_bpm=chain_tempo_bpm(project)).audio
    assert int(np.argmax(np.abs(out[0]))) == pytest.approx(100 + SR * 60.0 / quarter_bpm, abs=1)


def test_slot_validation_names_the_fix():
    with pytest.raises(ValueError, match="neither a pedalboard built-in"):
        FxSlot(plugin="Lowpassfilter")
    with pytest.raises(ValueError, match="not base64"):
        FxSlot(plugin="/x/Y.vst3", raw_state="@@@")
    with pytest.raises(PluginError, match="not installed"):
        build_plugin(FxSlot(plugin="/x/Y.vst3"))


def test_a_bad_fx_setting_is_refused_in_words_naming_the_option():
    """`fx add … --param cutoff_frequency_hz=abc` printed pybind's C++ signatures, and `--mix 2`
    pydantic's report with its type codes and a link to its docs."""
    from bridge.plugins.edit import make_slot, update_slot

    with pytest.raises(PluginError) as e:
        make_slot("LowpassFilter", parameters={"cutoff_frequency_hz": "abc"})
    assert str(e.value) == ("LowpassFilter: cutoff_frequency_hz = 'abc' is the wrong kind of value; "
                            "give a number (it is 50.0 now)")
    with pytest.raises(PluginError) as e:
        make_slot("LowpassFilter", mix=2.0)
    assert str(e.value) == "--mix 2.0: Input should be less than or equal to 1"
    with pytest.raises(PluginError) as e:
        update_slot(make_slot("LowpassFilter"), mix=-1.0)
    assert str(e.value) == "--mix -1.0: Input should be greater than or equal to 0"


# --- chains in the project: save/load, analysis, export mix ---------------------------------------

def make_project(folder: Path, *, seconds: float = 3.0, **fields):
    """Two stems holding the SAME seeded noise + a kick-like low thump ("Hats" and "Raw"), tempo 120."""
    from bridge.project import StemSpec, TempoSettings, save_project
    from bridge.project.schema import Project
    from tests.conftest import write_wav

    rng = np.random.default_rng(11)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    thump = (0.4 * np.sin(2 * np.pi * 60 * t) * np.exp(-8 * (t % 0.5))).astype(np.float32)
    audio = np.stack([thump + 0.2 * rng.standard_normal(n).astype(np.float32)] * 2)
    write_wav(folder / "stems" / "hats.wav", audio, SR)
    write_wav(folder / "stems" / "raw.wav", audio, SR)
    project = Project(name="fx", sample_rate=SR, tempo=TempoSettings(source="constant", tempo_bpm=120.0),
                      stems=[StemSpec(name="Hats", path="stems/hats.wav", role="drums"),
                             StemSpec(name="Raw", path="stems/raw.wav", role="other")], **fields)
    save_project(project, folder)
    return project


def test_missing_plugin_is_kept_in_the_project_and_reported(tmp_path):
    from bridge.project import load_project, save_project

    gone = FxSlot(plugin="/Library/Audio/Plug-Ins/VST3/FabFilter Pro-Q 3.vst3", name="Pro-Q 3",
                  raw_state="AAEC", parameters={"output_gain_db": -1.5})
    project = make_project(tmp_path, master_fx=[gone])
    loaded, _ = load_project(tmp_path)
    assert loaded.master_fx == [gone]           # never dropped
    save_project(loaded, tmp_path)
    assert json.loads((tmp_path / "stembridge.json").read_text())["master_fx"][0]["name"] == "Pro-Q 3"
    result = apply_chain(noise(0.2), SR, loaded.master_fx, where="master")
    assert "Pro-Q 3" in result.problems[0] and "not installed" in result.problems[0]
    assert project.master_fx == loaded.master_fx


@needs_zam
def test_raw_state_survives_save_and_reopen_byte_identically(tmp_path):
    import base64

    from bridge.plugins.edit import make_slot
    from bridge.project import load_project, save_project

    slot = make_slot(str(ZAMCOMP), parameters={"threshold_db": -25.0, "ratio": 6.0, "makeup_db": 3.0})
    project = make_project(tmp_path)
    project.stems[0].fx = [slot]
    save_project(project, tmp_path)
    reopened, _ = load_project(tmp_path)
    again = reopened.stems[0].fx[0]
    assert base64.b64decode(again.raw_state) == base64.b64decode(slot.raw_state)
    # ... and renders byte-identically: the stem through its chain before saving and after reopening
    from bridge.analysis.project import processed_stem

    rendered = [processed_stem(p.stems[0], tmp_path / p.stems[0].path, fx_sample_rate=SR, tempo_bpm=120.0)
                for p in (project, reopened)]
    assert rendered[0].tobytes() == rendered[1].tobytes()
    assert np.sqrt(np.mean(rendered[0] ** 2)) < 0.8 * np.sqrt(np.mean(processed_stem(
        project.stems[1], tmp_path / project.stems[1].path, fx_sample_rate=SR, tempo_bpm=120.0) ** 2))
    # The state alone gives the same audio as the settings.
    audio = noise(0.5, channels=1, seed=4)
    from_state = apply_chain(audio, SR, [again.model_copy(update={"parameters": {}})]).audio
    from_params = apply_chain(audio, SR, [FxSlot(plugin=str(ZAMCOMP), parameters=slot.parameters)]).audio
    np.testing.assert_allclose(from_state, from_params, atol=1e-6)


def _band_rms(audio: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64).mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / SR)
    return float(np.sqrt(spectrum[(freqs >= lo_hz) & (freqs < hi_hz)].sum()))


def test_lowpass_on_a_stem_cuts_its_high_band_in_the_analysis(tmp_path):
    from bridge.analysis.features import HIGH_BAND_HZ, LOW_BAND_HZ
    from bridge.analysis.project import analyze_project
    from bridge.project import load_project, save_project

    project = make_project(tmp_path)
    project.stems[0].fx = [FxSlot(plugin="LowpassFilter", parameters={"cutoff_frequency_hz": 300.0})]
    save_project(project, tmp_path)
    project, folder = load_project(tmp_path)
    analysis = analyze_project(project, folder, max_workers=1)
    hats, raw = analysis.stems["Hats"].curves, analysis.stems["Raw"].curves
    # Same file: only the chain differs. A one-pole low-pass at 300 Hz (6 dB/octave) leaves the 60 Hz
    # thump and is already 16 dB down at the high band's lower edge (2 kHz, 2.7 octaves up); white
    # noise puts most of that band's energy further up, so the band loses well over 20 dB.
    assert HIGH_BAND_HZ[0] >= 6 * 300.0 and LOW_BAND_HZ[1] <= 300.0
    assert float(np.mean(hats["high"])) < 0.1 * float(np.mean(raw["high"]))
    assert float(np.mean(hats["low"])) > 0.7 * float(np.mean(raw["low"]))

    # The cache key holds the chain: bypassing the filter brings back the raw stem's analysis ...
    project.stems[0].fx[0].bypass = True
    bypassed = analyze_project(project, folder, max_workers=1).stems["Hats"].curves
    np.testing.assert_allclose(bypassed["high"], raw["high"], rtol=1e-5)
    # ... and un-bypassing serves the filtered one again (from the cache, unchanged).
    project.stems[0].fx[0].bypass = False
    np.testing.assert_array_equal(analyze_project(project, folder, max_workers=1).stems["Hats"].curves["high"],
                                  hats["high"])


@needs_zam
def test_zamgeq31_on_a_stem_cuts_the_analysis_high_band_by_its_fader_settings(tmp_path):
    """A graphic EQ with every fader from 2.5 kHz up at −12 dB (the stem: noise + a 60 Hz thump)."""
    import pedalboard
    import soundfile as sf

    from bridge.analysis.features import compute_stem_features
    from bridge.analysis.project import analyze_project, processed_stem

    geq = ZAM / "ZamGEQ31.vst3"
    if not geq.exists():
        pytest.skip("ZamGEQ31.vst3 not installed")
    project = make_project(tmp_path)
    faders = {k: -12.0 for k in pedalboard.load_plugin(str(geq)).parameters
              if k.endswith("hz_db") and int(k[:-len("hz_db")]) >= 2514}
    assert len(faders) == 10  # 2514 Hz … 20801 Hz
    project.stems[0].fx = [FxSlot(plugin=str(geq), parameters=faders)]
    analysis = analyze_project(project, tmp_path, max_workers=1)
    hats, raw = analysis.stems["Hats"].curves, analysis.stems["Raw"].curves

    # The same EQ run through pedalboard directly (dual-mono, as the chain runs a mono plugin), then
    # the same fold-to-mono, resampling and features: the very same high-band curve.
    direct = pedalboard.load_plugin(str(geq))
    for k, v in faders.items():
        setattr(direct, k, v)
    audio = sf.read(tmp_path / "stems" / "hats.wav", dtype="float32", always_2d=True)[0].T
    wet = np.concatenate([direct.process(audio[c:c + 1], SR, reset=True) for c in range(audio.shape[0])])
    via_chain = processed_stem(project.stems[0], tmp_path / "stems" / "hats.wav", fx_sample_rate=SR,
                               tempo_bpm=120.0)
    np.testing.assert_allclose(via_chain, _resampled_mono(wet), atol=1e-6)
    expected = compute_stem_features(_resampled_mono(wet), name="Hats", role="drums").curves["high"]
    assert 0 <= len(hats["high"]) - len(expected) <= 1  # the song's frame count: a frame of padding at most
    np.testing.assert_allclose(hats["high"][:len(expected)], expected, rtol=1e-4, atol=1e-7)

    # Physics: white noise's energy in the high band (2–11 kHz) lies almost all above the 2.5 kHz
    # fader, where it is 12 dB down; the 2.0–2.5 kHz slice is cut less, so the band drops 10–12.5 dB.
    # Below 2 kHz nothing was touched: the low band (the thump) keeps its level.
    drop_db = 20 * np.log10(float(np.mean(hats["high"])) / float(np.mean(raw["high"])))
    assert -12.5 < drop_db < -9.5
    assert float(np.mean(hats["low"])) == pytest.approx(float(np.mean(raw["low"])), rel=0.03)


def _resampled_mono(audio: np.ndarray) -> np.ndarray:
    import math

    from scipy.signal import resample_poly

    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE
    g = math.gcd(SR, ANALYSIS_SAMPLE_RATE)
    return resample_poly(audio.mean(axis=0), ANALYSIS_SAMPLE_RATE // g, SR // g).astype(np.float32)


@needs_zam
def test_hosted_plugin_on_a_stem_runs_in_the_threaded_analysis(tmp_path, caplog):
    """pedalboard loads VST3s on the main thread only; analysis runs stems on worker threads."""
    import threading

    from bridge.analysis.project import analyze_project

    project = make_project(tmp_path)
    comp = FxSlot(plugin=str(ZAMCOMP), parameters={"threshold_db": -40.0, "ratio": 20.0, "attack_ms": 1.0})
    project.stems[0].fx = [comp]
    with caplog.at_level("WARNING"):
        analysis = analyze_project(project, tmp_path, max_workers=2)
    assert not [r for r in caplog.records if "bypassed" in r.getMessage()]
    hats, raw = analysis.stems["Hats"].curves, analysis.stems["Raw"].curves
    # 20:1 above -40 dBFS on a stem at about -12 dBFS RMS: the level drops by well over 12 dB.
    assert float(np.mean(hats["rms"])) < 0.25 * float(np.mean(raw["rms"]))

    # From a worker thread the chain runs in a child process: same samples as on the main thread.
    audio = noise(0.5, channels=2, seed=9)
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=apply_chain(audio, SR, [comp])))
    worker.start()
    worker.join()
    assert box["r"].problems == []
    np.testing.assert_array_equal(box["r"].audio, apply_chain(audio, SR, [comp]).audio)


def test_master_chain_is_heard_in_the_export_mix(tmp_path):
    from bridge.export.render import mix_project_audio

    project = make_project(tmp_path, seconds=2.0)
    for stem in project.stems:
        stem.gain_db = -12.0  # keep the sum under the export limiter, so what is measured is the chain
    plain = mix_project_audio(project, tmp_path, sample_rate=SR, duration_seconds=2.0)
    project.master_fx = [FxSlot(plugin="LowpassFilter", parameters={"cutoff_frequency_hz": 300.0})]
    problems: list[str] = []
    filtered = mix_project_audio(project, tmp_path, sample_rate=SR, duration_seconds=2.0, problems=problems)
    assert problems == [] and filtered.shape == plain.shape
    assert _band_rms(filtered, 4000, 16000) < 0.1 * _band_rms(plain, 4000, 16000)
    assert _band_rms(filtered, 40, 100) > 0.7 * _band_rms(plain, 40, 100)
    # A stem chain acts on that stem only: the stems are the same noise, so filtering "Hats" halves
    # the amplitude of the mix's highs.
    project.master_fx = []
    project.stems[0].fx = [FxSlot(plugin="LowpassFilter", parameters={"cutoff_frequency_hz": 300.0})]
    one = mix_project_audio(project, tmp_path, sample_rate=SR, duration_seconds=2.0)
    assert 0.4 < _band_rms(one, 4000, 16000) / _band_rms(plain, 4000, 16000) < 0.6


def _decoded_audio(path: Path) -> tuple[np.ndarray, int]:
    """The exported file's audio as a player decodes it: float (channels, samples), its rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().astype(np.float64) for frame in container.decode(stream)]
        return np.concatenate(chunks, axis=1), stream.rate


def test_master_chain_is_heard_in_the_exported_mp4(tmp_path):
    """The master chain reaches the file: a 300 Hz low-pass on the master, measured in the AAC audio
    decoded from the exported MP4 against the same export without the chain."""
    from bridge.export.render import render_project

    project = make_project(tmp_path, seconds=2.0)
    for stem in project.stems:
        stem.gain_db = -12.0  # under the export limiter: what is measured is the chain
    plain_mp4 = render_project(project, tmp_path, tmp_path / "plain.mp4", width=64, height=64, fps=10)
    project.master_fx = [FxSlot(plugin="LowpassFilter", parameters={"cutoff_frequency_hz": 300.0})]
    lp_mp4 = render_project(project, tmp_path, tmp_path / "lowpass.mp4", width=64, height=64, fps=10)
    plain, rate = _decoded_audio(plain_mp4)
    filtered, rate_lp = _decoded_audio(lp_mp4)
    assert rate == rate_lp and filtered.shape == plain.shape and plain.shape[1] >= 1.9 * rate

    def band(audio, lo, hi):
        spectrum = np.abs(np.fft.rfft(audio.mean(axis=0))) ** 2
        freqs = np.fft.rfftfreq(audio.shape[1], 1 / rate)
        return float(np.sqrt(spectrum[(freqs >= lo) & (freqs < hi)].sum()))

    # one pole at 300 Hz: ≥ 22 dB down from 4 kHz up (more further up), the 60 Hz thump untouched
    assert band(filtered, 4000, 12000) < 0.08 * band(plain, 4000, 12000)
    assert band(filtered, 40, 100) == pytest.approx(band(plain, 40, 100), rel=0.1)
    assert band(plain, 4000, 12000) > 0.3 * band(plain, 40, 100)  # the plain export does have highs


# --- command line --------------------------------------------------------------------------------

@needs_zam
def test_cli_scan_list_and_fx_editing(tmp_path, capsys):
    from bridge.cli import main
    from bridge.project import load_project

    folder = tmp_path / "plugins"
    garbage = fake_bundle(folder, "Garbage", b"\x7fELF garbage")
    copy_zamcomp(folder)
    project_dir = tmp_path / "song"
    make_project(project_dir)

    assert main(["plugins", "scan", "--no-standard", "--folder", str(folder), "--json"]) == 0
    scanned = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in scanned["plugins"]] == ["ZamComp"]
    assert [f["path"] for f in scanned["failures"]] == [str(garbage)]
    assert main(["plugins", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed["plugins"]] == ["ZamComp"] and "LowpassFilter" in listed["builtins"]

    # By scanned name, by built-in class name (any case); settings checked by loading the plugin.
    assert main(["fx", "add", str(project_dir), "--stem", "Raw", "ZamComp", "--param", "threshold_db=-30"]) == 0
    assert main(["fx", "add", str(project_dir), "--master", "lowpassfilter",
                 "--param", "cutoff_frequency_hz=500", "--mix", "0.5"]) == 0
    assert main(["fx", "set", str(project_dir), "--stem", "Raw", "1", "--param", "ratio=6"]) == 0
    assert main(["fx", "bypass", str(project_dir), "--master", "1"]) == 0
    project, _ = load_project(project_dir)
    comp = project.stem("Raw").fx[0]
    assert comp.name == "ZamComp" and comp.parameters == {"threshold_db": -30.0, "ratio": 6.0} and comp.raw_state
    assert project.master_fx == [FxSlot(plugin="LowpassFilter", parameters={"cutoff_frequency_hz": 500.0},
                                        mix=0.5, bypass=True)]
    capsys.readouterr()
    assert main(["fx", "list", str(project_dir), "--json"]) == 0
    chains = json.loads(capsys.readouterr().out)
    assert chains["stem 'Raw'"][0]["installed"] and chains["master"][0]["bypass"]

    # Mistakes: one message naming the value and the fix, exit status 2, project unchanged.
    before = (project_dir / "stembridge.json").read_bytes()
    assert main(["fx", "set", str(project_dir), "--stem", "Raw", "1", "--param", "threshold_db=20"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["fx", "add", str(project_dir), "--stem", "Raw", "NoSuchPlugin"]) == 2
    assert "plugins scan" in capsys.readouterr().err
    assert main(["fx", "remove", str(project_dir), "--stem", "Raw", "5"]) == 2
    assert "slot 5 does not exist" in capsys.readouterr().err
    assert (project_dir / "stembridge.json").read_bytes() == before
    assert main(["fx", "remove", str(project_dir), "--stem", "Raw", "1"]) == 0
    assert load_project(project_dir)[0].stem("Raw").fx == []


def test_fx_stem_is_found_in_any_case_and_an_ambiguous_or_unknown_name_lists_the_stems(tmp_path, capsys):
    """Producers type a stem's name as their DAW shows it: `--stem hats` failed on a stem named 'Hats'."""
    from bridge.cli import main
    from bridge.project import StemSpec, load_project, save_project

    project_dir = tmp_path / "song"
    make_project(project_dir)
    assert main(["fx", "add", str(project_dir), "--stem", "hats", "LowpassFilter"]) == 0
    assert "stem 'Hats'" in capsys.readouterr().out  # the message names the stem as it is spelled
    assert main(["fx", "set", str(project_dir), "--stem", "HATS", "1", "--param", "cutoff_frequency_hz=900"]) == 0
    assert main(["fx", "bypass", str(project_dir), "--stem", "raw", "1"]) == 2
    assert "stem 'Raw' has 0 slot(s)" in capsys.readouterr().err  # found Raw; its chain is empty
    saved = json.loads((project_dir / "stembridge.json").read_text())
    fx = {s["name"]: s.get("fx", []) for s in saved["stems"]}
    assert [(f["plugin"], f["parameters"]) for f in fx["Hats"]] == [("LowpassFilter", {"cutoff_frequency_hz": 900.0})]
    assert fx["Raw"] == []
    capsys.readouterr()

    # Unknown: the value and the stems. Two stems differing only in case: no guess, both named.
    assert main(["fx", "add", str(project_dir), "--stem", "kick", "Gain"]) == 2
    err = capsys.readouterr().err
    assert "'kick'" in err and "Hats, Raw" in err
    project, _ = load_project(project_dir)
    save_project(project.model_copy(update={"stems": [*project.stems, StemSpec(name="hats", path="stems/raw.wav")]}),
                 project_dir)
    before = (project_dir / "stembridge.json").read_bytes()
    assert main(["fx", "add", str(project_dir), "--stem", "HATS", "Gain"]) == 2
    err = capsys.readouterr().err
    assert "'HATS'" in err and "ambiguous" in err and "'Hats'" in err and "'hats'" in err
    assert (project_dir / "stembridge.json").read_bytes() == before
    assert main(["fx", "add", str(project_dir), "--stem", "hats", "Gain"]) == 0  # spelled exactly: that one
    saved = json.loads((project_dir / "stembridge.json").read_text())
    fx = {s["name"]: [f["plugin"] for f in s.get("fx", [])] for s in saved["stems"]}
    assert fx == {"Hats": ["LowpassFilter"], "Raw": [], "hats": ["Gain"]}


@needs_zam
def test_session_fx_commands_are_undoable_saved_and_reanalyse_only_on_active_changes(tmp_path):
    import base64

    from bridge.plugins.params import describe_parameters
    from bridge.session import AnalysisStarted, Session

    def analyses(s) -> list:
        assert s.wait_for_analysis(60)
        return [e.reason for e in s.poll_events() if isinstance(e, AnalysisStarted)]

    make_project(tmp_path)
    with Session.open(tmp_path, watch=False) as s:
        analyses(s)
        assert s.add_fx(None, str(ZAMCOMP), parameters={"threshold_db": -20.0}) == 0
        slot = s.project.master_fx[0]
        assert slot.name == "ZamComp" and slot.raw_state
        s.set_fx(None, 0, parameters={"ratio": 8.0})
        assert s.project.master_fx[0].parameters == {"threshold_db": -20.0, "ratio": 8.0}
        assert base64.b64decode(s.project.master_fx[0].raw_state) != base64.b64decode(slot.raw_state)
        info = {p.name: p for p in describe_parameters(s.project.master_fx[0])}
        assert info["ratio"].value == pytest.approx(8.0) and info["threshold_db"].unit == "dB"
        assert (info["threshold_db"].minimum, info["threshold_db"].maximum) == (-80.0, 0.0)
        assert "buffer_size_frames" not in info and "sample_rate_frames" not in info  # the host's, not knobs
        with pytest.raises(PluginError):
            s.set_fx(None, 0, parameters={"no_such_knob": 1.0})
        assert analyses(s) == []  # the master chain is the export mix's: no re-analysis
        s.add_fx("Hats", "lowpassfilter", parameters={"cutoff_frequency_hz": 500.0})
        assert analyses(s) == ["add LowpassFilter to stem Hats"]
        s.set_fx("Hats", 0, bypass=True)
        assert len(analyses(s)) == 1  # the stem's analysis hears the raw stem again
        s.undo()
        analyses(s)
        assert s.project.stem("Hats").fx == [FxSlot(plugin="LowpassFilter",
                                                    parameters={"cutoff_frequency_hz": 500.0})]
        s.set_fx("Hats", 0, mix=0.5, coalesce=True)
        s.set_fx("Hats", 0, mix=0.25, coalesce=True)  # one gesture: one undo step
        s.save()
        on_disk = json.loads((tmp_path / "stembridge.json").read_text())
        assert on_disk["stems"][0]["fx"][0]["mix"] == 0.25 and on_disk["master_fx"][0]["name"] == "ZamComp"
        s.undo()
        assert s.project.stem("Hats").fx[0].mix == 1.0
        s.remove_fx("Hats", 0)
        assert s.project.stem("Hats").fx == []
        s.undo()
        s.undo()
        assert s.project.stem("Hats").fx == []
        s.undo()
        s.undo()
        assert s.project.master_fx == []


def test_reordering_a_chain_changes_the_sound_is_undoable_and_reanalyses(tmp_path, capsys):
    """Order matters (a gain before a clipper is not a gain after it): `fx move` and Session.move_fx."""
    from bridge.cli import main
    from bridge.project import load_project
    from bridge.session import AnalysisStarted, Session

    make_project(tmp_path)
    boost = FxSlot(plugin="Gain", parameters={"gain_db": 12.0})
    clip = FxSlot(plugin="Clipping", parameters={"threshold_db": -6.0})
    cut = FxSlot(plugin="Gain", parameters={"gain_db": -12.0})
    audio = noise(0.3)
    ceiling = 10 ** (-6 / 20)
    # boost → clip → cut peaks at the ceiling −12 dB; moving the cut first lets the clipper see less
    before = apply_chain(audio, SR, [boost, clip, cut]).audio
    assert np.max(np.abs(before)) == pytest.approx(ceiling * 10 ** (-12 / 20), rel=1e-3)

    project, _ = load_project(tmp_path)
    from bridge.project import save_project

    save_project(project.model_copy(update={"master_fx": [boost, clip, cut]}), tmp_path)
    assert main(["fx", "move", str(tmp_path), "--master", "3", "1"]) == 0
    assert "1. Gain, 2. Gain, 3. Clipping" in capsys.readouterr().out
    moved = load_project(tmp_path)[0].master_fx
    assert moved == [cut, boost, clip]
    after = apply_chain(audio, SR, moved).audio  # −12 +12 then clip: the noise's own peaks, clipped
    np.testing.assert_allclose(after, np.clip(audio, -ceiling, ceiling), atol=1e-5)
    assert main(["fx", "move", str(tmp_path), "--master", "1", "4"]) == 2
    assert "slot 4 does not exist" in capsys.readouterr().err

    with Session.open(tmp_path, watch=False) as s:
        assert s.wait_for_analysis(60)
        s.poll_events()
        s.add_fx("Hats", boost)
        s.add_fx("Hats", clip)
        assert s.wait_for_analysis(60)
        s.poll_events()
        s.move_fx("Hats", 1, 0)
        assert s.fx_chain("Hats") == [clip, boost]
        assert s.wait_for_analysis(60)
        assert [e.reason for e in s.poll_events() if isinstance(e, AnalysisStarted)] == \
            ["move Clipping up in stem Hats"]
        s.undo()
        assert s.fx_chain("Hats") == [boost, clip]
        with pytest.raises(Exception, match="index 2 does not exist"):
            s.move_fx("Hats", 0, 2)


def test_plugin_window_needs_a_display_and_says_so(tmp_path, capsys):
    from bridge.cli import main
    from bridge.plugins.editor import display_problem, editor_problem, open_editor

    assert display_problem("darwin", {}) is None and display_problem("win32", {}) is None
    assert display_problem("linux", {"DISPLAY": ":0"}) is None
    problem = display_problem("linux", {})
    assert "DISPLAY is not set" in problem and "fx set" in problem
    assert "X11" in display_problem("linux", {"WAYLAND_DISPLAY": "wayland-0"})
    assert "built-in" in editor_problem(FxSlot(plugin="Compressor"))
    assert "not installed" in editor_problem(FxSlot(plugin="/nowhere/Gone.vst3", name="Gone"))
    with pytest.raises(PluginError, match="no window of its own"):
        open_editor(FxSlot(plugin="Reverb"))

    make_project(tmp_path, master_fx=[FxSlot(plugin="Limiter")])
    before = (tmp_path / "stembridge.json").read_bytes()
    assert main(["fx", "editor", str(tmp_path), "--master", "1"]) == 2
    assert "no window of its own" in capsys.readouterr().err
    assert (tmp_path / "stembridge.json").read_bytes() == before


@needs_zam
def test_plugin_window_state_comes_back_as_one_undo_step(tmp_path, monkeypatch):
    """What the producer does in the plugin's window (here: pedalboard's show_editor replaced by one
    that turns ZamComp's ratio knob, as a click would) comes back as the plugin's full state."""
    import base64
    import io

    import pedalboard

    from bridge.plugins import _editor
    from bridge.plugins.edit import make_slot
    from bridge.session import Session

    slot = make_slot(str(ZAMCOMP), parameters={"threshold_db": -30.0})
    seen = {}

    def turn_the_ratio_knob(self, close_event=None):
        seen["threshold"] = self.threshold_db  # the window shows the slot's settings
        self.ratio = 8.0

    monkeypatch.setattr(pedalboard.VST3Plugin, "show_editor", turn_the_ratio_knob)
    out = io.StringIO()
    _editor.run({"path": slot.plugin, "name": slot.name, "raw_state": slot.raw_state,
                 "parameters": slot.parameters}, out, commands=io.StringIO("close\n"))
    opened, done = (json.loads(line) for line in out.getvalue().splitlines())
    assert opened == {"open": True} and seen["threshold"] == pytest.approx(-30.0)
    assert done["changed"] == ["ratio"]
    assert done["parameters"] == {"threshold_db": pytest.approx(-30.0), "ratio": pytest.approx(8.0)}
    assert base64.b64decode(done["raw_state"]) != base64.b64decode(slot.raw_state)

    make_project(tmp_path)
    with Session.open(tmp_path, watch=False) as s:
        s.add_fx("Raw", slot)
        s.set_fx_state("Raw", 0, done["raw_state"], done["parameters"])
        edited = s.fx_chain("Raw")[0]
        assert s.undo_label == "stem Raw ZamComp edited in its window"
        # the state alone renders what pedalboard renders with threshold −30 and ratio 8
        audio = noise(0.5, channels=1, seed=5)
        direct = pedalboard.load_plugin(str(ZAMCOMP))
        direct.threshold_db, direct.ratio = -30.0, 8.0
        np.testing.assert_allclose(apply_chain(audio, SR, [edited.model_copy(update={"parameters": {}})]).audio,
                                   direct.process(audio, SR, reset=True), atol=1e-6)
        s.undo()
        assert s.fx_chain("Raw") == [slot]


@needs_zam
def test_plugin_window_runs_in_a_child_that_reports_failures():
    """The window's child process: the app gets an answer (here pedalboard's refusal without a
    display) instead of being blocked or taken down."""
    from bridge.plugins.editor import EditorWindow

    slot = FxSlot(plugin=str(ZAMCOMP), name="ZamComp")
    box = []
    window = EditorWindow(slot, box.append, env={"DISPLAY": ""})
    result = window.wait(60)
    assert result is not None and box == [result]
    assert result.error.startswith("ZamComp's window failed") and "display" in result.error
    assert not window.running
