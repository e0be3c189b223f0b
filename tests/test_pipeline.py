"""End to end: demo stems → project → analysis → mappings → procedural frames → MP4, checked
against independent truths (the demo's score, a decoded video, librosa's own onset curve)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import mir_eval
import numpy as np
import pytest
from conftest import REPO, shared_data

from bridge.analysis.project import analyze_project
from bridge.errors import Cancelled, ProjectError, RenderError
from bridge.export.render import render_project
from bridge.jobs import CancelToken
from bridge.project import load_project
from bridge.project.create import new_project


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from bridge.demo.song import generate_demo_song, write_demo_stems

    root = tmp_path_factory.mktemp("demo")
    song = generate_demo_song()
    write_demo_stems(song, root / "stems")
    new_project(root / "project", root / "stems")
    project, project_dir = load_project(root / "project")
    analysis = analyze_project(project, project_dir)
    return song, project, project_dir, analysis


def decode(path: Path):
    """Decode a video with PyAV: (gray frames float32 (n, h, w), video stream info, audio samples (ch, n), rate)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = v.average_rate
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(v)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        rate = a.rate
        chunks = [f.to_ndarray() for f in c.decode(a)]
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0))
    return np.stack(frames), Fraction(fps.numerator, fps.denominator), audio, rate


def test_project_guesses_demo_roles(demo):
    _, project, _, _ = demo
    assert {s.name: s.role for s in project.stems} == {
        "Drums": "drums", "Bass": "bass", "Other": "other", "Vocals": "vocals"}
    # default mappings only use stems that exist and valid parameters
    assert project.mappings and all(m.source.split(".")[0] in {"drums", "bass", "other", "vocals", "beat", "bar", "mix",
                                                               "Drums", "Bass", "Other", "Vocals"}
                                    for m in project.mappings)


def test_demo_beats_match_the_score(demo):
    song, _, _, analysis = demo
    grid = analysis.beat_grid
    assert grid.tempo_bpm == pytest.approx(song.tempo_bpm, rel=0.01)
    f = mir_eval.beat.f_measure(song.beats_s, grid.beats_s, f_measure_threshold=0.07)
    assert f >= 0.95, f
    fd = mir_eval.beat.f_measure(song.downbeats_s, grid.downbeats_s, f_measure_threshold=0.07)
    assert fd >= 0.9, fd
    # a section boundary where the drop starts (bar 9), within one beat
    drop_start = [a for a, _, name in song.sections if name == "drop"][0]
    starts = [a for a, _ in analysis.sections]
    assert min(abs(s - drop_start) for s in starts) < 60 / song.tempo_bpm


def test_kick_onsets_found_in_drum_stem(demo):
    song, _, _, analysis = demo
    drums = analysis.stems["Drums"]
    kicks = song.drum_onsets_s["kick"]
    # every kick is an onset (±30 ms); hats/snares add more onsets, so score recall only
    hits = [np.min(np.abs(drums.onsets_s - k)) < 0.03 for k in kicks]
    assert np.mean(hits) >= 0.95


def test_second_analysis_is_served_from_cache(demo, monkeypatch):
    _, project, project_dir, first = demo

    def no_decoding(*a, **k):
        raise AssertionError("audio was decoded although the analysis is cached")

    monkeypatch.setattr("bridge.analysis.project.load_audio", no_decoding)
    again = analyze_project(project, project_dir)
    np.testing.assert_array_equal(again.beat_grid.beats_s, first.beat_grid.beats_s)
    np.testing.assert_array_equal(again.stems["Drums"].curves["onset"], first.stems["Drums"].curves["onset"])


@pytest.fixture(scope="module")
def rendered(demo, tmp_path_factory):
    _, project, project_dir, analysis = demo
    out = tmp_path_factory.mktemp("render") / "demo.mp4"
    render_project(project, project_dir, out, analysis=analysis, width=320, height=180, fps=30)
    return out, decode(out), analysis


def test_video_has_every_frame_and_audio_of_equal_length(rendered):
    _, (frames, fps, audio, rate), analysis = rendered
    assert fps == 30
    expected_frames = int(np.ceil(analysis.duration_seconds * 30 - 1e-3))
    assert len(frames) == expected_frames
    assert frames.shape[1:] == (180, 320)
    assert audio.shape[0] == 2 and rate == 48000
    video_s = len(frames) / 30
    assert abs(audio.shape[1] / rate - video_s) <= 1 / 30
    # the mix is audible and not clipped: the limiter keeps peaks under 0 dBFS
    assert 0.05 < np.max(np.abs(audio)) <= 1.0


def test_video_moves_with_the_kicks(rendered, demo):
    """Frame-to-frame change peaks near drum onsets: correlate with an onset curve computed
    independently (librosa on the drum stem file), sampled per frame."""
    import librosa

    _, (frames, _, _, _), _ = rendered
    song, project, project_dir, _ = demo
    drum_path = project_dir / project.stem("Drums").path
    y, sr = librosa.load(str(drum_path), sr=22050, mono=True)
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=256)
    env_t = librosa.times_like(env, sr=sr, hop_length=256)
    n = len(frames)
    diff = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))  # change into frame k+1
    # strongest onset inside each frame's interval (k/fps, (k+1)/fps]
    edges = np.arange(n + 1) / 30
    per_frame = np.array([env[(env_t > edges[k]) & (env_t <= edges[k + 1])].max(initial=0) for k in range(1, n)])
    r = np.corrcoef(per_frame, diff)[0, 1]
    assert r > 0.4, f"correlation between drum onsets and frame change is {r:.2f}"


def test_frames_look_like_visuals_not_a_flat_colour(rendered):
    _, (frames, _, _, _), _ = rendered
    mid = frames[len(frames) // 2]
    assert mid.std() > 10  # structure inside a frame
    # not black (a black frame decodes to 0): the default looks are lines and glows on a dark ground,
    # about 20 of 255 on average
    assert np.mean([f.mean() for f in frames]) > 8


def test_partial_range_and_ntsc_rate(demo, tmp_path):
    _, project, project_dir, analysis = demo
    out = tmp_path / "part.mp4"
    render_project(project, project_dir, out, analysis=analysis, width=160, height=90, fps="30000/1001",
                   start_s=10.0, end_s=12.5)
    frames, fps, audio, rate = decode(out)
    assert fps == Fraction(30000, 1001)
    assert len(frames) == int(np.ceil(12.5 * fps - 1e-3)) - int(np.floor(10.0 * fps + 1e-3))
    assert abs(audio.shape[1] / rate - len(frames) / fps) <= 1 / fps


def test_cancel_leaves_no_file_and_keeps_an_existing_one(demo, tmp_path):
    _, project, project_dir, analysis = demo
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous render")
    token = CancelToken()

    def progress(done, total, label=""):
        if done >= 20:
            token.cancel()

    with pytest.raises(Cancelled):
        render_project(project, project_dir, out, analysis=analysis, width=160, height=90, fps=30,
                       progress=progress, cancel=token)
    assert out.read_bytes() == b"previous render"
    # the finished segments stay in the hidden work folder for a resume; no half-written file anywhere
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["out.mp4"]
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name]


def test_bad_render_options_are_named(demo, tmp_path):
    _, project, project_dir, analysis = demo
    with pytest.raises(RenderError, match="odd"):
        render_project(project, project_dir, tmp_path / "x.mp4", analysis=analysis, width=161, height=90)
    with pytest.raises(RenderError, match="--start"):
        render_project(project, project_dir, tmp_path / "x.mp4", analysis=analysis, start_s=50, end_s=40)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=600)


def test_cli_new_analyze_render(demo, tmp_path):
    song, project, project_dir, _ = demo
    stems_dir = (project_dir / project.stems[0].path).parent
    r = _cli("new", str(tmp_path / "p"), "--stems", str(stems_dir), "--role", "Other=piano", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith("stembridge.json")
    saved, _ = load_project(tmp_path / "p")
    assert saved.stem("Other").role == "piano"
    assert saved.sections, "new should store the detected sections so the producer can edit them"
    # refusing to overwrite a saved project
    r = _cli("new", str(tmp_path / "p"), "--stems", str(stems_dir), "-q")
    assert r.returncode == 2 and "already exists" in r.stderr

    r = _cli("analyze", str(tmp_path / "p"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"tempo_bpm", "beats", "downbeats", "sections", "stems"}
    assert out["tempo_bpm"] == pytest.approx(song.tempo_bpm, rel=0.01)
    assert out["tempo_span_bpm"] is None  # one tempo all song
    assert {s["name"] for s in out["stems"]} == {"Drums", "Bass", "Other", "Vocals"}
    assert all({"name", "role", "path", "duration_seconds", "sample_rate", "onsets"} <= set(s) for s in out["stems"])
    assert all({"start", "end"} == set(s) for s in out["sections"])

    video = tmp_path / "clip.mp4"
    r = _cli("render", str(tmp_path / "p"), "-o", str(video), "--width", "160", "--height", "90",
             "--start", "8", "--end", "10", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(video)
    frames, fps, _, _ = decode(video)
    assert len(frames) == 60 and fps == 30


def test_cli_errors_are_one_clear_line(tmp_path):
    r = _cli("render", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "stembridge new" in r.stderr
    (tmp_path / "stems").mkdir()
    (tmp_path / "stems" / "Song Drums.wav").write_text("not audio")
    r = _cli("new", str(tmp_path / "p"), "--stems", str(tmp_path / "stems"))
    assert r.returncode == 2 and "Song Drums.wav" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p" / "stembridge.json").exists()


def test_demo_command_prints_the_video_path_last(tmp_path):
    r = _cli("demo", "--out", str(tmp_path / "d"), "--width", "160", "--height", "90", "-q")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last == str((tmp_path / "d" / "render.mp4").resolve())
    frames, fps, audio, rate = decode(Path(last))
    assert len(frames) > 25 * 30 and audio.shape[1] > 25 * rate
    # a second run into the same folder redoes the demo; another project's folder is refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stembridge.json").write_text(json.dumps({"schema_version": 1, "name": "Mine"}))
    r = _cli("demo", "--out", str(tmp_path / "other"), "-q")
    assert r.returncode == 2 and "not the demo" in r.stderr


@pytest.mark.shared_data
def test_real_multitrack_song_beats_via_project(tmp_path):
    """A real 3/4 song at 82 BPM (rendered stems): beats from the project's stems."""
    folder = shared_data("songs", "03_freedoom_e2m6_concept_of_technology_3-4")
    truth = json.loads((folder / "ground_truth.json").read_text())
    new_project(tmp_path, folder)
    project, project_dir = load_project(tmp_path)
    assert {s.role for s in project.stems} >= {"drums", "bass"}
    grid = analyze_project(project, project_dir).beat_grid
    gt = np.asarray(truth["beats"])
    est = grid.beats_s[(grid.beats_s > 0.05) & (grid.beats_s < truth["duration_s"] - 0.05)]
    f = mir_eval.beat.f_measure(gt, est)
    amlt = mir_eval.beat.continuity(gt, est)[3]
    assert max(f, amlt) >= 0.8, (f, amlt)


def test_new_refuses_bad_role_override(demo, tmp_path):
    _, project, project_dir, _ = demo
    stems_dir = (project_dir / project.stems[0].path).parent
    with pytest.raises(ProjectError, match="match no stem"):
        new_project(tmp_path / "q", stems_dir, roles={"Tuba": "bass"})


def test_a_new_project_takes_the_shader_engine_where_opengl_works_else_the_procedural(demo, tmp_path, monkeypatch):
    """Every song its own look by default: the shader engine where this machine can draw it (OpenGL
    3.3, checked here independently of the code under test), the procedural engine where it cannot,
    and the producer's choice always."""
    from conftest import gl_problem

    import bridge.gl

    _, project, project_dir, _ = demo
    stems_dir = (project_dir / project.stems[0].path).parent
    made = new_project(tmp_path / "a", stems_dir).project
    assert made.engine.name == ("procedural" if gl_problem() else "shader")
    monkeypatch.setattr(bridge.gl, "opengl_problem", lambda: "no EGL here (test)")
    assert new_project(tmp_path / "b", stems_dir).project.engine.name == "procedural"
    from bridge.project.schema import EngineSettings

    chosen = new_project(tmp_path / "c", stems_dir, engine=EngineSettings(name="procedural")).project
    assert chosen.engine.name == "procedural"


@pytest.mark.slow
def test_the_demo_renders_the_same_on_a_ray_cluster(demo, tmp_path):
    """Issue 18's "done when": the demo (its default engine and look) rendered on a real local Ray
    cluster, cut at the drop, equals the local straight render frame for frame (CRF 0, lossless)."""
    ray = pytest.importorskip("ray", reason="Ray is the cluster extra: pip install 'stembridge[cluster]'")
    from segment_helpers import decoded

    song, project, project_dir, analysis = demo
    drop_s = song.sections[1][0]
    options = dict(analysis=analysis, start_s=drop_s - 1.0, end_s=drop_s + 1.0, width=160, height=90, crf=0)
    local = render_project(project, project_dir, tmp_path / "local.mp4", segments=1, **options)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             logging_level="WARNING", log_to_driver=False)
    try:
        remote = render_project(project, project_dir, tmp_path / "ray.mp4", segments=2, ray_address="auto",
                                **options)
    finally:
        ray.shutdown()
    got, want = decoded(remote), decoded(local)
    assert len(got["hashes"]) == len(want["hashes"]) >= 60  # 2 s at 30 fps (±1 for the rounding of the drop)
    assert got["hashes"] == want["hashes"]
    assert len(set(got["hashes"])) > 30  # a moving picture, not one frame repeated
    assert got["audio_s"] == pytest.approx(got["video_s"], abs=1 / 30)


def _analysis_modules_used_by(entry: str) -> set[str]:
    """The bridge.analysis modules ``entry`` imports, directly or through each other (lazy imports
    inside functions included), read from the source: the truth the cache's file lists must cover."""
    import ast
    from pathlib import Path

    from bridge.analysis import cache

    here = Path(cache.__file__).parent
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((here / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bridge.analysis."):
                todo.append(node.module.rsplit(".", 1)[1] + ".py")
            elif isinstance(node, ast.ImportFrom) and node.module == "bridge.analysis":
                todo.extend(alias.name + ".py" for alias in node.names)
    return seen - {"cache.py"}


def test_every_module_behind_a_cached_result_is_part_of_its_code_version():
    """A change to any module behind a cached result must invalidate it. Periodicity, beat_phase and
    bars were split out of beats.py and a change there left stale grids; the producer's corrections
    (×2 on a swung song) were outside the version and a fix there hid behind the cached grid.
    Per-stem features depend on fewer files, so a beat-tracking change does not re-decode stems."""
    from bridge.analysis import cache

    song = _analysis_modules_used_by("project.py")
    assert {"beats.py", "corrections.py", "bars.py"} <= song
    assert song <= set(cache._SONG_FILES), sorted(song - set(cache._SONG_FILES))
    stem = _analysis_modules_used_by("features.py")
    assert stem <= set(cache._FEATURE_FILES), sorted(stem - set(cache._FEATURE_FILES))
    assert "beats.py" not in cache._FEATURE_FILES


def test_the_percussive_part_in_blocks_equals_the_whole_separation_and_can_be_cancelled():
    """percussive_part separates a long mix in 30-s blocks (bounded memory, a cancel lands within a
    block); each block's context covers the median filter's reach, so the result must equal
    librosa's separation of the whole signal, seams included. Truth: librosa on the whole."""
    import librosa

    from bridge.analysis.pipeline import PERCUSSIVE_MARGIN, percussive_part
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE as SR

    rng = np.random.default_rng(7)
    n = int(70.3 * SR)  # two seams and a short last block
    t = np.arange(n) / SR
    hits = np.zeros(n, dtype=np.float32)
    hits[(np.arange(0.1, 70.0, 0.37) * SR).astype(int)] = 1.0
    mix = (0.2 * np.sin(2 * np.pi * 220.0 * t) + np.convolve(hits, rng.standard_normal(600) * np.exp(
        -np.arange(600) / 120.0), mode="same")).astype(np.float32)
    whole = librosa.effects.percussive(mix, margin=PERCUSSIVE_MARGIN)
    part = percussive_part([("mix", "other", mix)])
    np.testing.assert_allclose(part, whole, rtol=0, atol=1e-6 * float(np.abs(whole).max()))
    assert float(np.abs(part).max()) > 0.1  # the hits are there
    assert percussive_part([("drums", "drums", mix)]) is None  # a drums stem needs no separation
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        percussive_part([("mix", "other", mix)], cancel=cancel)
