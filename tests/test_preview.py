"""The preview: incremental FrameParams, keyframes that changed, coalescing, cancelling, frame_at,
the frame cache and the stems watcher — all without Qt or a GPU.

Independent truths: FrameParams from bridge.mapping.evaluate_mappings itself, geometry and colour
computed here by hand (a dot moved by a known zoom, a grey lifted by a known flash), files written
by the test, and engines that record or block so behaviour (not wall time) is asserted.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from preview_project import FPS, vocals_audio, wav_bytes

from bridge.analysis.types import BeatGrid
from bridge.mapping import evaluate_mappings
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES
from bridge.mapping.sections import keyframe_frames
from bridge.preview.cache import FrameCache
from bridge.preview.compose import compose_frame
from bridge.preview.evaluator import ParamEvaluator
from bridge.preview.plan import EngineSpec, PreviewPlan, preview_size
from bridge.preview.watcher import StemWatcher
from bridge.session import KeyframeRendered, PreviewPassFinished, PreviewPassStarted, Session
from bridge.visuals.procedural import flash_affine


def open_session(project_dir: Path, **options) -> Session:
    kw = dict(preview_long_side=64, watch=False, autosave=False)
    kw.update(options)
    return Session.open(project_dir, **kw)


def mapping_index(project, source: str, target: str) -> int:
    return next(i for i, m in enumerate(project.mappings) if m.source == source and m.target == target)


def drain(session: Session) -> list:
    return session.poll_events()


# --- engines for the tests ----------------------------------------------------------------------

class SlowEngine:
    """Renders a flat frame after ``delay_s``; records the frames it rendered."""

    name = "slow"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.rendered: list[int] = []
        self._ctx = None

    def start(self, ctx) -> None:
        self._ctx = ctx

    def render(self, frame_index, params, section_index, section_mix):
        time.sleep(self.delay_s)
        self.rendered.append(frame_index)
        return np.full((self._ctx.height, self._ctx.width, 3), frame_index % 256, dtype=np.uint8)

    def close(self) -> None:
        pass


class BlockingEngine(SlowEngine):
    """Blocks inside render() until released: the worker is provably mid-render meanwhile."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.in_render = False

    def render(self, frame_index, params, section_index, section_mix):
        self.in_render = True
        self.entered.set()
        self.release.wait(30)
        self.in_render = False
        return super().render(frame_index, params, section_index, section_mix)


# --- FrameParams ------------------------------------------------------------------------------

def test_incremental_params_equal_evaluate_mappings_and_recompute_only_the_edited_mapping(project_dir):
    from bridge.analysis.project import analyze_project
    from bridge.export.render import section_looks
    from bridge.project import load_project

    project, pdir = load_project(project_dir)
    analysis = analyze_project(project, pdir)
    looks = section_looks(project, analysis)
    roles = {s.name: s.role for s in project.stems}
    fps = project.render.fps_fraction
    ev = ParamEvaluator()
    mine, problems = ev.evaluate(project.mappings, analysis, looks, fps=fps, stem_roles=roles)
    ref = evaluate_mappings(project.mappings, analysis, looks, fps=fps, stem_roles=roles)
    assert problems == [] and ev.evaluated == len(project.mappings)
    for attr in ("values", "section_index", "section_mix"):
        assert np.array_equal(getattr(mine, attr), getattr(ref, attr)), attr

    mappings = list(project.mappings)
    i = mapping_index(project, "Vocals.rms", "brightness")
    mappings[i] = mappings[i].model_copy(update={"amount": 0.8})
    mine2, _ = ev.evaluate(mappings, analysis, looks, fps=fps, stem_roles=roles)
    assert ev.evaluated == len(project.mappings) + 1  # only the edited mapping was computed again
    ref2 = evaluate_mappings(mappings, analysis, looks, fps=fps, stem_roles=roles)
    assert np.array_equal(mine2.values, ref2.values)

    # Slider drags of amount / offset / clamp rescale the kept signal; release and curve recompute
    # it. Every table still equals evaluate_mappings bit for bit.
    for change, new_signal in (({"offset": 0.05}, False), ({"amount": 0.3}, False), ({"clamp": (0.0, 0.2)}, False),
                               ({"release_ms": 400.0}, True), ({"curve": "exp"}, True)):
        signals = ev.signals_evaluated
        mappings[i] = mappings[i].model_copy(update=change)
        mine_k, _ = ev.evaluate(mappings, analysis, looks, fps=fps, stem_roles=roles)
        assert ev.signals_evaluated == signals + new_signal, change
        ref_k = evaluate_mappings(mappings, analysis, looks, fps=fps, stem_roles=roles)
        assert np.array_equal(mine_k.values, ref_k.values), change
    ref2 = evaluate_mappings(mappings, analysis, looks, fps=fps, stem_roles=roles)

    # A mapping whose stem is gone contributes nothing and is reported, instead of failing the table.
    mappings.append(mappings[0].model_copy(update={"source": "Piano.rms"}))
    mine3, problems = ev.evaluate(mappings, analysis, looks, fps=fps, stem_roles=roles)
    assert [p.source for p in problems] == ["Piano.rms"] and np.array_equal(mine3.values, ref2.values)


def test_keyframes_follow_the_beat_grid_and_section_starts():
    grid = BeatGrid(tempo_bpm=120.0, beats_s=np.arange(0.0, 8.0, 0.5), downbeats_s=np.arange(0.0, 8.0, 2.0),
                    beats_per_bar=4, source="project")
    kf = keyframe_frames(grid, fps=Fraction(30), n_frames=240, every_beats=1.0, section_starts_s=[2.9])
    assert kf.tolist() == sorted(set(range(0, 240, 15)) | {87, 239})
    kf2 = keyframe_frames(grid, fps=Fraction(30), n_frames=240, every_beats=2.0)
    assert kf2.tolist() == list(range(0, 240, 30)) + [239]
    assert preview_size(1280, 720, long_side=384) == (384, 216)
    assert preview_size(320, 180, long_side=384) == (320, 180)  # never upscaled


# --- regeneration -------------------------------------------------------------------------------

def test_amount_change_rerenders_exactly_the_keyframes_whose_parameters_changed(project_dir):
    with open_session(project_dir) as s:
        assert s.wait_idle(30)
        before = s.scheduler.plan
        i = mapping_index(s.project, "Vocals.rms", "brightness")
        drain(s)
        s.update_mapping(i, amount=1.0)
        assert s.wait_idle(30)
        after = s.scheduler.plan
        events = drain(s)
        rendered = [e.frame_index for e in events if isinstance(e, KeyframeRendered)
                    and e.generation == after.generation and not e.from_cache]

        # Independently: two evaluate_mappings tables, the rows each keyframe's render reads.
        from bridge.export.render import section_looks

        project, analysis = s.project, s.analysis
        looks = section_looks(project, analysis)
        roles = {st.name: st.role for st in project.stems}
        old_mappings = list(project.mappings)
        old_mappings[i] = old_mappings[i].model_copy(update={"amount": 0.35})
        a = evaluate_mappings(old_mappings, analysis, looks, fps=project.render.fps_fraction, stem_roles=roles)
        b = evaluate_mappings(project.mappings, analysis, looks, fps=project.render.fps_fraction, stem_roles=roles)
        w = s.scheduler.warmup_frames
        expected = {int(k) for k in after.keyframes if np.any(a.values[max(0, k - w):k + 1] != b.values[max(0, k - w):k + 1])}
        assert np.array_equal(before.keyframes, after.keyframes)
        assert 0 < len(expected) < len(after.keyframes)  # the vocals only sing in the second half
        assert sorted(rendered) == sorted(expected)  # each once, and nothing else

        # Undo: every keyframe is back in the cache, nothing renders.
        s.undo()
        assert s.wait_idle(30)
        assert not [e for e in drain(s) if isinstance(e, KeyframeRendered) and not e.from_cache]


def test_a_burst_of_20_edits_makes_one_regeneration_pass(project_dir):
    # Debounce 0.5 s so a loaded test machine pausing this thread mid-burst cannot split it.
    with open_session(project_dir, preview_debounce_s=0.5) as s:
        assert s.wait_idle(30)
        i = mapping_index(s.project, "mix.onset", "travel")
        drain(s)
        t0 = time.monotonic()
        for k in range(20):
            s.update_mapping(i, amount=0.05 + 0.001 * k)
            time.sleep(0.005)
        burst_s = time.monotonic() - t0
        assert s.wait_idle(30)
        events = drain(s)
        passes = [e for e in events if isinstance(e, PreviewPassStarted)]
        assert burst_s < 0.5
        assert len(passes) == 1
        assert passes[0].generation == s.scheduler.plan.generation  # the pass is for the last edit
        assert s.preview_status().keyframes_pending == 0


def test_an_edit_mid_pass_cancels_the_stale_pass(project_dir):
    engines: list[SlowEngine] = []

    def factory(name, settings):
        engines.append(SlowEngine(0.04))
        return engines[-1]

    with open_session(project_dir, engine_factory=factory, preview_warmup_frames=0, preview_probe=False,
                      preview_debounce_s=0.02) as s:
        events: list = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(isinstance(e, KeyframeRendered) for e in events) < 3:
            events += drain(s)
            time.sleep(0.005)
        first = next(e for e in events if isinstance(e, PreviewPassStarted))
        s.update_mapping(mapping_index(s.project, "mix.onset", "travel"), amount=0.03)
        assert s.wait_idle(30)
        events += drain(s)
        finished = next(e for e in events if isinstance(e, PreviewPassFinished) and e.pass_id == first.pass_id)
        assert finished.cancelled and finished.rendered < len(first.pending)
        i_cancel = events.index(finished)
        late = [e for e in events[i_cancel:] if isinstance(e, KeyframeRendered) and e.pass_id == first.pass_id]
        assert len(late) <= 1  # at most the keyframe that was in flight
        second = [e for e in events if isinstance(e, PreviewPassStarted) and e.pass_id != first.pass_id]
        assert len(second) == 1
        plan = s.scheduler.plan
        assert all(s.scheduler.cache.in_memory(k) for k in plan.keys)
        assert len(engines[0].rendered) < 2 * len(plan.keyframes)  # the old pass did not run to the end


def test_frame_at_answers_while_the_worker_is_stuck_mid_render(project_dir):
    engine = BlockingEngine()
    with open_session(project_dir, engine_factory=lambda name, settings: engine, preview_warmup_frames=0) as s:
        assert engine.entered.wait(30)
        results: list[np.ndarray] = []

        def play():
            for k in range(60):
                results.append(s.frame_at(k / FPS))

        t = threading.Thread(target=play)
        t.start()
        t.join(20)
        try:
            assert not t.is_alive(), "frame_at waited for the model worker"
            assert engine.in_render  # the worker is still inside render() after all 60 frames
            assert len(results) == 60 and all(f.shape == (36, 64, 3) and f.dtype == np.uint8 for f in results)
            assert np.mean([f.mean() for f in results]) > 1.0  # the procedural fallback drew something
        finally:
            engine.release.set()


def test_after_an_edit_frame_at_modulates_the_old_keyframes_until_new_ones_arrive(project_dir):
    class GatedEngine(SlowEngine):
        def __init__(self) -> None:
            super().__init__(0.0)
            self.open = threading.Event()
            self.open.set()

        def render(self, frame_index, params, section_index, section_mix):
            self.open.wait(30)
            return np.full((self._ctx.height, self._ctx.width, 3), 100, dtype=np.uint8)

    engine = GatedEngine()
    with open_session(project_dir, engine_factory=lambda name, settings: engine, preview_warmup_frames=0) as s:
        # the default preset has no flash (benchmarks/av_sync.py): the producer adds one
        i = s.add_mapping("Drums.onset", "flash", amount=0.8, release_ms=120.0)
        assert s.wait_idle(30)
        engine.open.clear()  # from now on the worker cannot deliver new keyframes
        try:
            old_plan = s.scheduler.plan
            s.update_mapping(i, amount=0.0)  # no more flashes anywhere
            deadline = time.monotonic() + 10
            while s.scheduler.plan is old_plan and time.monotonic() < deadline:
                time.sleep(0.005)
            new_plan = s.scheduler.plan
            col = PARAMETER_NAMES.index("flash")
            k = int(next(k for k in new_plan.keyframes if old_plan.params.values[k, col] > 0.05))
            frame = s.frame_at((k + 0.5) / FPS)
            assert s.scheduler.last_frame_source == "stale"  # not the procedural fallback
            # The keyframe (flat 100) was shown with the old flash, as the engines apply it
            # (y = alpha·x + beta); without the flash it is the x that the engine would have lifted
            # to 100, clipped to 0…255.
            alpha, beta = flash_affine(float(old_plan.params.values[k, col]))
            assert new_plan.params.values[k, col] == 0.0 and beta > 0
            expected = np.clip((100 - beta) / alpha, 0, 255)
            assert abs(float(frame.mean()) - expected) <= 2.0
        finally:
            engine.open.set()


def test_an_engine_that_cannot_load_is_reported_and_frames_keep_coming(project_dir):
    from bridge.session import PreviewError

    with open_session(project_dir) as s:
        assert s.wait_idle(30)
        drain(s)
        s.set_engine(name="lcm", model=str(project_dir / "no-such-model"))
        assert s.wait_idle(30)
        errors = [e for e in drain(s) if isinstance(e, PreviewError)]
        assert len(errors) == 1 and "no-such-model" in errors[0].message
        frame = s.frame_at(2.0)
        assert frame.shape == (36, 64, 3) and s.scheduler.last_frame_source in ("stale", "fallback")


def test_keyframes_render_in_a_child_process_and_equal_the_engine_run_here(project_dir):
    """By default a feedback engine's keyframes are rendered in a child process (off the GIL that
    frame_at needs); the picture must be the engine's own, as rendered directly in this process."""
    import os

    from bridge.jobs import CancelToken
    from bridge.preview.render import render_sequential
    from bridge.visuals import get_engine

    with open_session(project_dir) as s:
        assert s.wait_idle(60)
        plan = s.scheduler.plan
        assert not plan.engine.batched and plan.warmup_frames > 0
        child = s.scheduler.engines.engine
        assert child.pid != os.getpid()  # rendered elsewhere
        i = plan.keyframes.size // 2
        got = s.scheduler.cache.peek(plan.keys[i])
        engine = get_engine(plan.engine.name, **dict(plan.engine.settings))
        try:
            engine.start(plan.render_context())
            want = render_sequential(engine, plan, int(plan.keyframes[i]), CancelToken())
        finally:
            engine.close()
    assert got is not None and float(want.std()) > 1.0  # a picture, not black
    np.testing.assert_array_equal(got, want)


def test_an_engine_error_in_the_keyframe_process_comes_back_as_itself():
    from bridge.errors import RenderError
    from bridge.preview.offload import KeyframeProcess

    with pytest.raises(RenderError, match="no_such_setting"):
        KeyframeProcess("procedural", {"no_such_setting": 1}, nice=0)


@pytest.fixture
def one_torch_thread():
    """torch's thread pool spins badly on a loaded 2-core machine (3 s a tiny frame instead of 30 ms)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_lcm_keyframes_are_independent_batched_frames(project_dir, tmp_path, one_torch_thread):
    from lcm_tiny import build_tiny_lcm

    from bridge.visuals import RenderContext, get_engine
    from bridge.visuals.lcm import FrameJob

    model = build_tiny_lcm(tmp_path / "tiny-lcm")
    batches: list[list[int]] = []

    def factory(name, settings):
        engine = get_engine(name, **settings)
        real = engine.render_batch

        def render_batch(jobs):
            batches.append([j.frame_index for j in jobs])
            return real(jobs)

        engine.render_batch = render_batch
        return engine

    options = {"device": "cpu", "tiny_vae": False}
    with open_session(project_dir, engine_factory=factory, lcm_options=options) as s:
        s.set_engine(name="lcm", model=str(model), keyframe_every_beats=4.0)
        assert s.wait_idle(120)
        plan = s.scheduler.plan
        assert plan.engine.batched and plan.warmup_frames == 0
        assert sorted(k for b in batches for k in b) >= sorted(int(k) for k in plan.keyframes)
        # Independently: a fresh engine renders keyframe k alone, from the same row: same pixels.
        k = int(plan.keyframes[2])
        fresh = get_engine("lcm", **dict(plan.engine.settings))
        fresh.start(RenderContext(width=plan.width, height=plan.height, fps=plan.fps, sections=plan.looks,
                                  seed=plan.seed, mode="preview"))
        alone = fresh.render_batch([FrameJob(k, plan.params.row(k), int(plan.params.section_index[k]),
                                             float(plan.params.section_mix[k]))])[0]
        got = s.frame_at((k + 0.25) / FPS)
        assert s.scheduler.last_frame_source == "exact"
        # Equal up to float rounding of batched convolutions (≤ 1 level on a few pixels) …
        diff = np.abs(got.astype(int) - alone)
        assert diff.max() <= 2 and diff.mean() < 0.05
        # … while another keyframe (other section, other row) is a different picture.
        other = s.frame_at(int(plan.keyframes[0]) / FPS)
        assert np.abs(other.astype(int) - alone).mean() > 5


# --- frame_at composition -----------------------------------------------------------------------

def _plan_with(values: np.ndarray, keyframes: list[int], *, width: int = 64, height: int = 48) -> PreviewPlan:
    n = values.shape[0]
    params = FrameParams(fps=Fraction(30), start_frame=0, values=values.astype(np.float32),
                         section_index=np.zeros(n, dtype=np.int32), section_mix=np.ones(n, dtype=np.float32))
    return PreviewPlan(generation=1, edit_time=None, built_at=0.0, fps=Fraction(30), width=width, height=height,
                       seed=0, params=params, looks=(), keyframes=np.array(keyframes, dtype=np.int64),
                       keys=tuple(f"k{k}" for k in keyframes), engine=EngineSpec("procedural", (), ()),
                       warmup_frames=0)


def test_in_between_frames_follow_the_zoom_and_flash_of_their_instant():
    col = {n: i for i, n in enumerate(PARAMETER_NAMES)}
    values = np.zeros((31, len(PARAMETER_NAMES)))
    values[1:11, col["zoom"]] = 0.05           # frames 1-10 zoom in by 5 % each
    values[10, col["flash"]] = 0.5             # a kick on frame 10
    plan = _plan_with(values, [0, 30])
    key0 = np.full((48, 64, 3), 60, dtype=np.uint8)
    cx, cy = 64 / 2 - 0.5, 48 / 2 - 0.5
    key0[int(cy), int(cx + 10)] = 255          # a bright dot 10 px right of the centre (plus a bit)

    out = compose_frame(plan, 10, [(0, key0)])
    # Geometry: after 10 steps of ×1.05 the dot sits at 10.5 · 1.05^10 ≈ 17.1 px from the centre.
    expected_x = cx + (int(cx + 10) - cx) * 1.05 ** 10
    row = out[int(cy)].astype(float).mean(axis=1)
    assert abs(int(np.argmax(row)) - expected_x) <= 1.0
    # Colour: the instant's flash, as the engines apply it (their own function), lifts grey 60.
    alpha, beta = flash_affine(0.5)
    assert beta > 0 and abs(float(np.median(out)) - (60 * alpha + beta)) <= 2.0
    # The frame before the kick has no flash and less zoom.
    out9 = compose_frame(plan, 9, [(0, key0)])
    assert abs(float(np.median(out9)) - 60) <= 2.0


def test_colour_correction_turns_one_rows_grade_into_anothers_as_the_engines_apply_them(rng):
    """A picture x shown with row a's grade and flash (the engines' display_affine), corrected from a
    to b, must be x shown with row b's — for hue, saturation, brightness and flash together."""
    from bridge.preview.compose import colour_correction
    from bridge.visuals.procedural import display_affine

    col = {n: i for i, n in enumerate(PARAMETER_NAMES)}

    def row(**v):
        r = np.zeros(len(PARAMETER_NAMES))
        for k, x in v.items():
            r[col[k]] = x
        return r

    def shown(x, r):
        m = display_affine(hue=r[col["hue"]], saturation=r[col["saturation"]], brightness=r[col["brightness"]],
                           flash=r[col["flash"]])
        return x @ m[:, :3].T + m[:, 3]

    x = rng.uniform(40, 200, size=(500, 3))
    a = row(hue=0.1, saturation=0.2, brightness=-0.2, flash=0.3)
    b = row(hue=-0.15, saturation=-0.3, brightness=0.25, flash=0.1)
    c = colour_correction(a, b)
    np.testing.assert_allclose(shown(x, a) @ c[:, :3].T + c[:, 3], shown(x, b), atol=1e-6)
    assert np.abs(shown(x, a) - shown(x, b)).mean() > 10  # the two rows do look different


def test_in_between_frames_cross_fade_the_neighbouring_keyframes_by_distance():
    values = np.zeros((31, len(PARAMETER_NAMES)))
    plan = _plan_with(values, [0, 30])
    a = np.full((48, 64, 3), 40, dtype=np.uint8)
    b = np.full((48, 64, 3), 200, dtype=np.uint8)
    for j in (5, 15, 24):
        out = compose_frame(plan, j, [(0, a), (30, b)])
        assert abs(float(out.mean()) - (40 + (200 - 40) * j / 30)) <= 1.0


# --- the cache ----------------------------------------------------------------------------------

def test_frame_cache_memory_budget_disk_store_and_damaged_files(tmp_path, rng):
    frames = {f"{i:032x}": rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for i in range(5)}
    one = 36 * 64 * 3
    cache = FrameCache(tmp_path / "preview", memory_budget_bytes=3 * one, write_behind=False)
    for key, frame in frames.items():
        cache.put(key, frame)
    keys = list(frames)
    assert len(cache) == 3 and cache.memory_bytes == 3 * one
    assert cache.peek(keys[0]) is None and cache.peek(keys[4]) is not None  # least recently used went
    got = cache.get(keys[0])  # from disk, and back in memory
    assert np.array_equal(got, frames[keys[0]]) and cache.hits_disk == 1 and cache.peek(keys[0]) is not None
    assert not got.flags.writeable
    cache.path_for(keys[1]).write_bytes(b"not a numpy file")
    assert cache.get(keys[1]) is None  # a damaged file is a miss
    assert not list((tmp_path / "preview").rglob("*.partial*"))
    cache.close()


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_frame_cache_disk_budget_evicts_least_recently_used_files(tmp_path, rng):
    folder = tmp_path / "preview"
    frames = {f"{i:02x}" * 16: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for i in range(12)}
    keys = list(frames)
    one = 36 * 64 * 3 + 128  # pixels + the .npy header
    # memory holds nothing, so every read below is a disk read
    cache = FrameCache(folder, memory_budget_bytes=0, disk_budget_bytes=6 * one, write_behind=False)
    for key in keys[:6]:
        cache.put(key, frames[key])
        assert _folder_bytes(folder) <= 6 * one
    assert cache.disk_frames() == 6 and cache.disk_usage() == _folder_bytes(folder) == 6 * one
    for key in keys[:2]:  # the two oldest become the most recently used
        assert np.array_equal(cache.get(key), frames[key])
    for key in keys[6:9]:  # three more: the three least recently used (2, 3, 4) go, oldest first
        cache.put(key, frames[key])
        assert _folder_bytes(folder) <= 6 * one and cache.disk_usage() == _folder_bytes(folder)
    on_disk = {p.stem for p in folder.rglob("*.npy")}
    assert on_disk == {keys[i] for i in (0, 1, 5, 6, 7, 8)} and cache.evicted == 3
    assert cache.get(keys[2]) is None and cache.misses == 1  # evicted: a miss, not an error
    assert not cache.contains(keys[3])
    # the order lives on in the files' mtimes: a new cache over the folder evicts the same way
    cache.close()
    again = FrameCache(folder, memory_budget_bytes=0, disk_budget_bytes=6 * one, write_behind=False)
    assert again.disk_usage() == 6 * one
    again.put(keys[9], frames[keys[9]])
    assert {p.stem for p in folder.rglob("*.npy")} == {keys[i] for i in (0, 1, 6, 7, 8, 9)}
    # a smaller cap takes effect at once; a frame larger than the cap stays in memory only
    again.set_disk_budget(2 * one)
    assert _folder_bytes(folder) <= 2 * one and again.disk_frames() == 2
    assert {p.stem for p in folder.rglob("*.npy")} == {keys[8], keys[9]}
    again.set_disk_budget(one - 1)
    assert again.disk_usage() == 0 and _folder_bytes(folder) == 0
    again.put(keys[10], frames[keys[10]])
    assert again.disk_usage() == 0 and not again.path_for(keys[10]).exists()
    # a larger cap lets frames accumulate again; clearing empties the folder
    again.set_disk_budget(None)
    for key in keys:
        again.put(key, frames[key])
    assert again.disk_frames() == 12 and _folder_bytes(folder) == 12 * one
    again.clear_disk()
    assert again.disk_usage() == 0 and not list(folder.rglob("*"))
    assert again.get(keys[0]) is None
    with pytest.raises(ValueError):
        again.set_disk_budget(-1)
    again.close()


def test_frame_cache_write_behind_respects_the_disk_budget(tmp_path, rng):
    folder = tmp_path / "preview"
    one = 36 * 64 * 3 + 128
    cache = FrameCache(folder, disk_budget_bytes=4 * one)  # writes behind, on its thread
    frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(10)]
    keys = [f"{i:02x}" * 16 for i in range(10)]
    for key, frame in zip(keys, frames, strict=True):
        cache.put(key, frame)
    cache.flush()
    assert {p.stem for p in folder.rglob("*.npy")} == set(keys[6:])
    assert cache.disk_usage() == _folder_bytes(folder) == 4 * one
    assert np.array_equal(cache.get(keys[0]), frames[0])  # memory still has the evicted frame
    cache.close()


def test_frame_cache_finds_frames_an_earlier_cache_wrote_and_survives_deleted_files(tmp_path, rng):
    frame = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)
    key = "ab" * 16
    first = FrameCache(tmp_path / "preview")  # writes behind, on its thread
    first.put(key, frame)
    first.close()
    second = FrameCache(tmp_path / "preview")
    second.flush()  # its listing of the disk store is done
    assert np.array_equal(second.get(key), frame) and second.hits_disk == 1
    assert second.get("cd" * 16) is None and second.misses == 1
    third = FrameCache(tmp_path / "preview")
    third.flush()
    second.path_for(key).unlink()  # deleted behind the cache's back: a miss, not an error
    assert third.get(key) is None
    third.put(key, frame, persist=False)  # memory only until persisted
    assert not second.path_for(key).exists()
    third.persist(key)
    third.flush()
    assert np.array_equal(np.load(second.path_for(key)), frame)
    for c in (second, third):
        c.close()


# --- the watcher --------------------------------------------------------------------------------

def test_watcher_acts_once_a_slow_write_has_settled_and_decodes(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    stem = folder / "Song Vocals.wav"
    stem.write_bytes(wav_bytes(vocals_audio()))
    got = []
    w = StemWatcher({stem: None}, got.append, interval_s=0.01, settle_polls=3)
    data = wav_bytes(vocals_audio((0.0, 2.0), freq_hz=220.0))
    chunks = np.array_split(np.frombuffer(data, dtype=np.uint8), 6)
    with open(stem, "wb") as fh:
        for chunk in chunks[:5]:
            fh.write(chunk.tobytes())
            fh.flush()
            for _ in range(5):  # more polls than settle_polls: a truncated file must not count
                w.poll_once()
        assert got and {c.kind for c in got} == {"unreadable"}  # partial versions, never "changed"
        fh.write(chunks[5].tobytes())
    for _ in range(5):
        w.poll_once()
    assert [c.kind for c in got if c.kind != "unreadable"] == ["changed"]
    for _ in range(5):
        w.poll_once()  # nothing more: the same content
    assert [c.kind for c in got if c.kind != "unreadable"] == ["changed"]

    # A new file appears; a stem disappears; a quick delete-and-rewrite is a change, not a removal.
    (folder / "Song Keys.wav").write_bytes(data)
    stem.unlink()
    got.clear()
    for _ in range(4):
        w.poll_once()
    assert sorted(c.kind for c in got) == ["added", "removed"]
    other = folder / "Song Bass.wav"
    other.write_bytes(wav_bytes(vocals_audio()))
    w.set_stems({stem: None, other: None})
    got.clear()
    other.unlink()
    w.poll_once()
    other.write_bytes(data)
    for _ in range(5):
        w.poll_once()
    assert [c.kind for c in got] == ["changed"]


# --- the CLI ------------------------------------------------------------------------------------

def test_preview_cli_writes_a_frame_and_a_status_line(project_dir, tmp_path, capsys):
    import json

    import cv2

    from bridge.commands.preview import main

    out = tmp_path / "out"
    rc = main([str(project_dir), "--out-dir", str(out), "--duration", "0.2", "--fps", "10", "--start", "5",
               "--wait-idle", "--long-side", "64", "--no-watch"])
    assert rc == 0
    frame = cv2.imread(str(out / "frame.png"))
    assert frame is not None and frame.shape == (36, 64, 3) and frame.mean() > 1.0
    status = json.loads((out / "status.json").read_text())
    assert status["keyframes_total"] == status["keyframes_done"] > 0 and status["keyframes_pending"] == 0
    assert status["position_seconds"] == pytest.approx(5.0) and status["frame_source"] in ("exact", "blend")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines and lines[-1]["keyframes_done"] == status["keyframes_done"]


def test_preview_follows_a_new_mix_analysis(tmp_path):
    """mix.onset is keyed by the mix's own curves: after a gain change re-analyses the mix, the
    preview's parameters change too (a content cache that ignored the mix would keep the old)."""
    from fractions import Fraction

    from conftest import write_wav

    from bridge.analysis.project import analyze_project
    from bridge.mapping import evaluate_mappings
    from bridge.preview.evaluator import ParamEvaluator
    from bridge.project import load_project
    from bridge.project.create import new_project
    from bridge.project.schema import Mapping

    sr = 22050
    t = np.arange(4 * sr) / sr
    clicks = np.zeros_like(t)
    for k in range(8):
        clicks[int((0.25 + 0.5 * k) * sr):int((0.25 + 0.5 * k) * sr) + 200] = 0.8
    pad = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.7 * t))
    write_wav(tmp_path / "stems" / "Clicks.wav", clicks[None, :].astype(np.float32), sr)
    write_wav(tmp_path / "stems" / "Pad.wav", pad[None, :].astype(np.float32), sr)
    new_project(tmp_path / "p", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "p")
    mappings = [Mapping(source="mix.rms", target="zoom", amount=1.0)]
    table = ParamEvaluator()
    a1 = analyze_project(project, project_dir)
    p1, problems = table.evaluate(mappings, a1, (), fps=Fraction(30))
    assert not problems
    quieter = project.model_copy(update={"stems": [s.model_copy(update={"gain_db": -30.0 if s.name == "Pad" else 0.0})
                                                   for s in project.stems]})
    a2 = analyze_project(quieter, project_dir)
    p2, _ = table.evaluate(mappings, a2, (), fps=Fraction(30))
    direct = evaluate_mappings(mappings, a2, (), fps=Fraction(30))
    assert not np.allclose(p1.column("zoom"), p2.column("zoom"))
    np.testing.assert_allclose(p2.column("zoom"), direct.column("zoom"), atol=1e-6)
