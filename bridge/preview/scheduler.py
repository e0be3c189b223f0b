"""Preview scheduler: incremental FrameParams, keyframes that changed, one model worker, frame_at.

Pipeline (DESIGN.md "Threads")::

    Session edit ──▶ update(inputs) ──▶ coordinator thread
                                         │ 1. FrameParams for the whole song, re-evaluating only the
                                         │    mappings whose inputs changed (ParamEvaluator)
                                         │ 2. keyframes (every keyframe_every_beats on the beat grid,
                                         │    plus section starts); the keyframe at the playhead is
                                         │    keyed first and sent to the worker at once if its key
                                         │    changed (the *probe*); the running pass is cancelled
                                         │ 3. then every keyframe's key, while the model runs; the new
                                         │    plan is swapped in (frame_at modulates with the new
                                         │    parameters from here on)
                                         │ 4. after edits pause for ``debounce_s``: ONE pass over the
                                         │    keyframes whose keys are not in memory
                                         ▼
                                       model worker thread (the only thread that touches engines,
                                         hence torch): probe first, then the pass, nearest the
                                         playhead first (ahead of it while playing), re-ranked
                                         after every keyframe; disk hits are loaded, misses rendered

``frame_at(t)`` runs on the caller's thread (GUI timer, CLI loop) and shares no lock with the
worker except the frame cache's dictionary lock, which is never held while rendering.

Keyframe anchors: a feedback engine (procedural) renders a keyframe from black after
``warmup_frames`` warm-up frames (so its trails exist), hence its key includes those rows; the LCM
engine renders keyframes as independent text-to-image frames through ``render_batch`` (anchor
"t2i"), so an edit never cascades down an img2img chain.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from bridge.analysis.types import BeatGrid, SongAnalysis, StemFeatures
from bridge.errors import BridgeError, Cancelled, ProjectError
from bridge.jobs import CancelToken
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES, PARAMETERS
from bridge.mapping.sections import keyframe_frames  # noqa: F401  (re-exported: bridge.preview.keyframe_frames)
from bridge.preview.cache import FrameCache, frame_key
from bridge.visuals.base import RenderContext, SectionLook

log = logging.getLogger(__name__)

#: Preview frames are this many pixels on their long side (the LCM engine's preview default).
DEFAULT_PREVIEW_LONG_SIDE = 384
#: Quiet time after the last edit before a regeneration pass starts (coalesces slider drags).
DEFAULT_DEBOUNCE_S = 0.075
#: Warm-up frames rendered before a keyframe of a feedback engine (its trails decay by ~0.92 per
#: frame, so 4 frames give the echoes ~70 % of their steady-state strength for 4× less work than 16).
DEFAULT_WARMUP_FRAMES = 4
#: The coordinator waits at most this long for the idle worker to pick up a probe (see _replan).
PROBE_HANDOVER_S = 0.002
#: While playing, a keyframe behind the playhead ranks as if it were this many times further away.
BEHIND_PENALTY = 3.0
#: Key format version: bump when the key's meaning changes.
_KEY_VERSION = "preview-key-1"

_ORD_COL = {name: i for i, name in enumerate(PARAMETER_NAMES)}
_NEUTRAL_ROW = np.array([PARAMETERS[n].neutral for n in PARAMETER_NAMES], dtype=np.float64)
_MIN_ROW = np.array([PARAMETERS[n].minimum for n in PARAMETER_NAMES], dtype=np.float64)
_MAX_ROW = np.array([PARAMETERS[n].maximum for n in PARAMETER_NAMES], dtype=np.float64)


# =================================================================================================
# Events (plain dataclasses; the Session forwards them to poll_events())
# =================================================================================================

@dataclass(frozen=True)
class ParamsUpdated:
    """A new plan is in place: FrameParams re-evaluated after an edit or a new analysis.

    changed_frames: how many frames' parameter rows (or sections) differ from the previous plan.
    changed_keyframes: keyframe frame indices whose content key changed (what needs rendering).
    """

    generation: int
    n_frames: int
    changed_frames: int
    changed_keyframes: tuple[int, ...]
    evaluate_ms: float


@dataclass(frozen=True)
class PreviewPassStarted:
    pass_id: int
    generation: int
    pending: tuple[int, ...]  # keyframe frame indices not in memory when the pass started


@dataclass(frozen=True)
class PreviewPassFinished:
    pass_id: int
    generation: int
    rendered: int       # keyframes rendered by the engine in this pass
    loaded: int         # keyframes found in the cache (disk) instead
    cancelled: bool     # superseded by an edit (stale work stopped)


@dataclass(frozen=True)
class KeyframeRendered:
    """A keyframe is in the cache. ``probe`` = rendered at once after an edit (the playhead's)."""

    frame_index: int
    generation: int
    pass_id: int | None
    probe: bool
    from_cache: bool    # found in memory or on disk instead of rendered
    render_ms: float
    edit_to_frame_ms: float | None  # set on the first frame of a generation at the playhead
    done_at: float = 0.0            # time.monotonic() when the frame was in the cache


@dataclass(frozen=True)
class MappingProblem:
    """A mapping cannot be evaluated (e.g. its stem is missing); it contributes nothing."""

    index: int
    source: str
    message: str


@dataclass(frozen=True)
class PreviewError:
    """The preview could not do something (engine failed to load, a frame failed to render)."""

    message: str


@dataclass(frozen=True)
class PreviewStatus:
    generation: int
    keyframes_total: int
    keyframes_done: int
    keyframes_pending: int
    pass_active: bool
    last_edit_to_frame_ms: float | None
    last_render_ms: float | None
    frame_sources: dict[str, int]  # frame_at results so far: exact / blend / stale / fallback / blank

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# =================================================================================================
# Pure helpers
# =================================================================================================

def preview_size(width: int, height: int, *, long_side: int = DEFAULT_PREVIEW_LONG_SIDE) -> tuple[int, int]:
    """The preview resolution: the output aspect ratio with ``long_side`` pixels on the long edge
    (never larger than the output), both edges even (≥ 16)."""
    scale = min(1.0, long_side / max(width, height))
    w = max(16, int(round(width * scale / 2)) * 2)
    h = max(16, int(round(height * scale / 2)) * 2)
    return w, h


def _hash_arrays(*arrays: np.ndarray, extra: bytes = b"") -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(extra)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _same_args(a: tuple, b: tuple) -> bool:
    """Element-wise: the same object (a beat grid is compared by identity), or equal values."""
    return len(a) == len(b) and all(x is y or (not isinstance(x, BeatGrid) and x == y) for x, y in zip(a, b, strict=True))


class ParamEvaluator:
    """:func:`bridge.mapping.evaluate_mappings` for the whole song, re-evaluating only what changed.

    Each mapping's contribution (``amount · curve(follower(source)) + offset``, clamped) is kept,
    keyed by the mapping's fields and a content hash of what it reads (the stems' features, or the
    beat grid for oscillators). After an edit to one mapping, or a re-analysed stem, only the
    mappings that depend on it are re-evaluated; the contributions are then summed in mapping order
    exactly as ``evaluate_mappings`` sums them, so the table is bit-identical to it (tested).

    Unlike ``evaluate_mappings``, a mapping that cannot be resolved (its stem was removed) does not
    fail the whole table: it contributes nothing and is reported in ``problems``.
    """

    def __init__(self, *, max_entries: int = 512) -> None:
        self._memo: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._max_entries = max_entries
        self._stem_tokens: weakref.WeakKeyDictionary[StemFeatures, str] = weakref.WeakKeyDictionary()
        self._grid_tokens: weakref.WeakKeyDictionary[BeatGrid, str] = weakref.WeakKeyDictionary()
        self.evaluated = 0  # mappings actually computed (not memo hits), for tests and benchmarks
        self.signals_evaluated = 0  # of which the source → smoothing → curve part was computed too
        self._edges: np.ndarray = np.zeros(0)
        self._edges_key: tuple[Fraction, int] | None = None
        self._timeline: tuple[tuple[SectionLook, ...], np.ndarray, np.ndarray] | None = None
        self._parts: dict[int, tuple] = {}
        #: (n_frames, per-mapping (column, contribution) parts, the clipped float32 table) of the last call.
        self._last_table: tuple[tuple, list, np.ndarray] | None = None

    def _stem_token(self, f: StemFeatures) -> str:
        tok = self._stem_tokens.get(f)
        if tok is None:
            names = sorted(f.curves)
            tok = _hash_arrays(*(f.curves[n] for n in names), f.onsets_s,
                               extra=repr((names, f.frame_rate_hz, f.duration_seconds)).encode())
            self._stem_tokens[f] = tok
        return tok

    def _grid_token(self, g: BeatGrid) -> str:
        tok = self._grid_tokens.get(g)
        if tok is None:
            tok = _hash_arrays(g.beats_s, g.downbeats_s, extra=repr((g.tempo_bpm, g.beats_per_bar)).encode())
            self._grid_tokens[g] = tok
        return tok

    def _memo_get(self, key: tuple) -> np.ndarray | None:
        got = self._memo.get(key)
        if got is not None:
            self._memo.move_to_end(key)
        return got

    def _memo_put(self, key: tuple, value: np.ndarray) -> None:
        value.flags.writeable = False
        self._memo[key] = value
        while len(self._memo) > self._max_entries:
            self._memo.popitem(last=False)

    def _part(self, m: Any, analysis: SongAnalysis, roles: tuple, base: tuple, edges: np.ndarray,
              fps: Fraction) -> tuple[str, np.ndarray] | ProjectError:
        """(target, contribution) of enabled mapping ``m``, or the error resolving its source.

        Kept per mapping object: a Session edit replaces the edited mapping and keeps the others'
        objects, so after an edit only the new mapping is looked at again. Its contribution is then
        looked up by content (the mapping's fields and what it reads), so an undo, or a value
        dragged back to where it was, is not computed again either.
        """
        from bridge.mapping import evaluate as ev
        from bridge.mapping.sources import OscillatorSource, resolve_source, source_stem

        got = self._parts.get(id(m))
        if got is not None and got[0] is m and got[1] is analysis and got[2] == roles and got[3] == base:
            return got[4]
        try:
            src = resolve_source(m.source, analysis, stem_roles=dict(roles))
        except (ProjectError, KeyError, ValueError) as e:
            result: tuple[int, np.ndarray] | ProjectError = ProjectError(str(e))
        else:
            if isinstance(src, OscillatorSource):
                dep: tuple = ("grid", self._grid_token(analysis.beat_grid))
            else:
                dep = ("stems",) + tuple((s, self._stem_token(source_stem(analysis, s))) for s in src.stems)
            key = (m.model_dump_json(), dep, base)
            contribution = self._memo_get(key)
            if contribution is None:
                # The shaped signal (source → smoothing → curve) is kept apart: an amount, offset or
                # clamp change (a slider drag) only rescales it.
                signal_key = ("signal", m.source, m.attack_ms, m.release_ms, m.curve, dep, base)
                shaped = self._memo_get(signal_key)
                if shaped is None:
                    shaped = ev.mapping_signal(m, src, analysis, fps=fps, start_frame=0, edges_s=edges)
                    self._memo_put(signal_key, shaped)
                    self.signals_evaluated += 1
                contribution = ev.scale_contribution(m, shaped)
                self._memo_put(key, contribution)
                self.evaluated += 1
            result = (m.target, contribution)
        if len(self._parts) > 4 * self._max_entries:
            self._parts.clear()
        self._parts[id(m)] = (m, analysis, roles, base, result)  # holds m: its id stays unique
        return result

    def evaluate(self, mappings: Sequence[Any], analysis: SongAnalysis, sections: Sequence[SectionLook], *,
                 fps: Fraction, stem_roles: Mapping[str, str] | None = None
                 ) -> tuple[FrameParams, list[MappingProblem]]:
        """Whole-song FrameParams (frames 0 … ceil(duration·fps)−1) and the mappings that failed."""
        from bridge.mapping import evaluate as ev
        from bridge.mapping.sections import section_timeline

        fps = Fraction(fps)
        n_frames = ev.song_frame_count(analysis.duration_seconds, fps)
        if self._edges_key != (fps, n_frames):
            self._edges, self._edges_key = ev.frame_times(fps, 0, n_frames), (fps, n_frames)
            self._edges.flags.writeable = False
            self._timeline = None
        edges = self._edges
        problems: list[MappingProblem] = []
        base = (str(fps), n_frames, repr(analysis.duration_seconds))
        roles = tuple(sorted((stem_roles or {}).items()))
        names = ev.column_names(mappings)
        col_of = {name: i for i, name in enumerate(names)}
        # One (column, contribution) per mapping, None where it is disabled or failed.
        parts: list[tuple[int, np.ndarray] | None] = []
        for index, m in enumerate(mappings):
            part = self._part(m, analysis, roles, base, edges, fps) if m.enabled else None
            if isinstance(part, ProjectError):
                problems.append(MappingProblem(index, m.source, str(part)))
                part = None
            parts.append(None if part is None else (col_of[part[0]], part[1]))
        last = self._last_table
        if last is not None and last[0] == (n_frames, names) and len(last[1]) == len(parts):
            # Only the columns whose contributions changed are summed again, in mapping order as
            # evaluate_mappings sums them (so the table stays bit-identical to it); the others are
            # copied from the last table. After a one-mapping edit that is one column of ~20.
            columns = {c for a, b in zip(last[1], parts, strict=True)
                       if not (a is b or (a is not None and b is not None and a[0] == b[0] and a[1] is b[1]))
                       for c in (a[0] if a else None, b[0] if b else None) if c is not None}
            table = last[2].copy()
        else:
            columns = set(range(len(names)))
            table = np.empty((n_frames, len(names)), dtype=np.float32)
        n_params = len(PARAMETER_NAMES)
        for c in columns:
            # shader:NAME columns (after the parameters) start at 0 and are not clipped here
            col = np.full(n_frames, _NEUTRAL_ROW[c] if c < n_params else 0.0, dtype=np.float64)
            for part in parts:
                if part is not None and part[0] == c:
                    col += part[1]
            if c < n_params:
                np.clip(col, _MIN_ROW[c], _MAX_ROW[c], out=col)
                if PARAMETERS[PARAMETER_NAMES[c]].integrated:
                    col = ev.integrate_rate(col)  # the table starts at frame 0, as evaluate_mappings' sum
            table[:, c] = col
        table.flags.writeable = False
        self._last_table = ((n_frames, names), parts, table)
        looks = tuple(sections)
        if self._timeline is None or self._timeline[0] != looks:
            index_, mix_ = section_timeline(looks, edges[:-1], edges[1:])
            index_.flags.writeable = mix_.flags.writeable = False
            self._timeline = (looks, index_, mix_)
        params = FrameParams(fps=fps, start_frame=0, values=table,
                             section_index=self._timeline[1], section_mix=self._timeline[2], names=names)
        return params, problems


# =================================================================================================
# Plans
# =================================================================================================

@dataclass(frozen=True)
class EngineSpec:
    """Which engine renders keyframes and with what settings.

    settings: keyword arguments for the engine factory. key_settings: the subset that changes
    pixels (goes into every frame key). code_version: hash of the engine's source file.
    """

    name: str
    settings: tuple[tuple[str, Any], ...]
    key_settings: tuple[tuple[str, Any], ...]
    code_version: str = ""

    @property
    def batched(self) -> bool:
        """Keyframes as independent frames through ``render_batch`` (diffusion) — else sequential."""
        return self.name == "lcm"


_CODE_VERSIONS: dict[str, str] = {}


def engine_code_version(name: str) -> str:
    """Hash of ``bridge/visuals/<name>.py`` (found without importing it); "" when there is none."""
    if name not in _CODE_VERSIONS:
        import importlib.util

        version = ""
        try:
            spec = importlib.util.find_spec(f"bridge.visuals.{name}")
            if spec is not None and spec.origin:
                with open(spec.origin, "rb") as fh:
                    version = hashlib.blake2b(fh.read(), digest_size=8).hexdigest()
        except (ImportError, OSError, ValueError):
            version = ""
        _CODE_VERSIONS[name] = version
    return _CODE_VERSIONS[name]


def engine_spec_for(engine_settings: Any, *, long_side: int, lcm_options: Mapping[str, Any] | None = None,
                    song_settings: Mapping[str, Any] | None = None) -> EngineSpec:
    """EngineSpec from the project's :class:`~bridge.project.schema.EngineSettings`.

    ``lcm_options`` (e.g. ``{"device": "cpu", "tiny_vae": False}``) are passed to the LCM engine as
    well and are part of its keys (the procedural engine takes no options).
    """
    # dict settings (the shader engine's images / audio_inputs) as sorted pairs: a spec is hashed,
    # and the engines take either form
    s = {k: (tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in engine_settings.model_dump().items()}
    name = s.pop("name")
    if song_settings:  # the song's own look/palette where the producer chose none
        from bridge.visuals.character import with_song_settings

        s = with_song_settings(s, song_settings)
    settings = dict(s)
    if name == "procedural":
        key = {"seed": s["seed"]}
    elif name == "lcm":
        settings["preview_long_side"] = long_side
        key = {k: s[k] for k in ("model", "preview_steps", "guidance_scale", "seed")}
    else:
        key = {k: v for k, v in s.items() if k not in ("keyframe_every_beats", "steps")}
    for k, v in ((lcm_options or {}) if name == "lcm" else {}).items():
        settings[k] = v
        key[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
    return EngineSpec(name=name, settings=tuple(sorted(settings.items())),
                      key_settings=tuple(sorted(key.items())), code_version=engine_code_version(name))


@dataclass(frozen=True, eq=False)
class PreviewInputs:
    """What the Session hands the scheduler after every change: immutable snapshots only.

    project: the Project (never mutated after this). analysis: the SongAnalysis for its stems.
    edit_time: time.monotonic() of the edit this reflects (None for a new analysis, a reload…).
    """

    project: Any
    analysis: SongAnalysis
    edit_time: float | None = None
    sections: tuple[SectionLook, ...] | None = None  # None: bridge.export.render.section_looks


@dataclass(frozen=True, eq=False)
class PreviewPlan:
    """Everything frames depend on for one generation of the inputs (immutable)."""

    generation: int
    edit_time: float | None
    built_at: float
    fps: Fraction
    width: int
    height: int
    seed: int
    params: FrameParams
    looks: tuple[SectionLook, ...]
    keyframes: np.ndarray       # int64 (n_keyframes,), sorted
    keys: tuple[str, ...]       # one per keyframe
    engine: EngineSpec
    warmup_frames: int
    #: frame_at's per-interval feedback motion, filled lazily (see _segment_motion).
    motion_cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def n_frames(self) -> int:
        return len(self.params)

    @functools.cached_property
    def key_index(self) -> dict[int, int]:
        """keyframe frame index → position in ``keyframes`` / ``keys``."""
        return {int(k): i for i, k in enumerate(self.keyframes.tolist())}

    def render_context(self) -> RenderContext:
        return RenderContext(width=self.width, height=self.height, fps=self.fps, sections=self.looks,
                             seed=self.seed, mode="preview")


def _section_cond(looks: Sequence[SectionLook], i: int) -> str:
    if 0 <= i < len(looks):
        s = looks[i]
        return repr((i, s.name, s.prompt, s.negative_prompt, s.seed, s.style, s.look, s.transition, s.hit))
    return "-"


@functools.lru_cache(maxsize=16)
def _key_head(engine: EngineSpec, width: int, height: int, fps: Fraction, seed: int) -> Any:
    """The blake2b state after the key's head fields (copy it before use: it is shared)."""
    head = frame_key(_KEY_VERSION, engine.name, engine.code_version, repr(engine.key_settings), "preview",
                     width, height, str(fps), seed)
    return hashlib.blake2b(head.encode(), digest_size=16)


def compute_keys(params: FrameParams, looks: Sequence[SectionLook], keyframes: np.ndarray, *,
                 engine: EngineSpec, width: int, height: int, seed: int, warmup_frames: int,
                 previous: PreviewPlan | None = None) -> tuple[str, ...]:
    """One content key per keyframe (see :mod:`bridge.preview.cache`).

    A frame's conditioning is its section's (index, name, prompt, negative prompt, seed, style),
    plus the previous section's while it transitions in (mix < 1) and the next one's when
    ``prompt_mix`` > 0 — exactly what the engines read. Sequential (feedback) engines add the
    warm-up rows before the keyframe as its anchor.

    ``previous``: the last plan; where everything but some rows is the same, the keys of
    keyframes whose rows (and warm-up rows) did not change are taken from it instead of hashed.
    """
    values, sec, mix = params.values, params.section_index, params.section_mix
    reuse: dict[int, str] = {}
    if (previous is not None and previous.looks == tuple(looks) and previous.engine == engine
            and (previous.width, previous.height, previous.seed, previous.warmup_frames) == (width, height, seed, warmup_frames)
            and previous.fps == params.fps and len(previous.params) == len(params) and previous.params.start_frame == params.start_frame
            and previous.params.names == params.names):
        old = previous.params
        changed = (np.any(old.values != values, axis=1) | (old.section_index != sec) | (old.section_mix != mix))
        if not engine.batched and warmup_frames > 0:  # a keyframe also reads the rows before it
            c = np.concatenate([[0], np.cumsum(changed)])
            idx = np.arange(changed.size)
            changed = (c[idx + 1] - c[np.maximum(0, idx - warmup_frames)]) > 0
        for k, key in zip(previous.keyframes.tolist(), previous.keys, strict=True):
            if not changed[k - params.start_frame]:
                reuse[k] = key
    pm_col = _ORD_COL["prompt_mix"]
    cond_memo: dict[tuple[int, bool, bool], str] = {}

    def cond(j: int) -> str:
        i = int(sec[j])
        c = (i, bool(mix[j] < 1.0), bool(values[j, pm_col] > 0.0))
        got = cond_memo.get(c)
        if got is None:
            got = _section_cond(looks, i)
            if c[1] and i > 0:
                got += "<" + _section_cond(looks, i - 1)
            if c[2]:
                got += ">" + _section_cond(looks, i + 1)
            cond_memo[c] = got
        return got

    anchor_kind = b"t2i" if engine.batched else f"warmup{warmup_frames}".encode()
    # One hash state for the shared head, copied per keyframe (cheaper than hashing it again).
    # Fields: frame index (8 bytes), the row (fixed size), the conditioning (length-prefixed), the
    # anchor (last, so it needs no length).
    base = _key_head(engine, width, height, params.fps, seed)
    keys = []
    for k in keyframes.tolist():
        if k in reuse:
            keys.append(reuse[k])
            continue
        j = k - params.start_frame
        c = cond(j).encode()
        h = base.copy()
        h.update(k.to_bytes(8, "little", signed=True))
        h.update(values[j].tobytes())
        h.update(sec[j:j + 1].tobytes())
        h.update(mix[j:j + 1].tobytes())
        h.update(len(c).to_bytes(8, "little"))
        h.update(c)
        h.update(anchor_kind)
        if not engine.batched and warmup_frames > 0:
            a = max(0, j - warmup_frames)
            h.update(values[a:j].tobytes() + sec[a:j].tobytes() + mix[a:j].tobytes()
                     + "|".join(cond(i) for i in range(a, j)).encode())
        keys.append(h.hexdigest())
    return tuple(keys)


# =================================================================================================
# frame_at: blending cached keyframes, modulated by the instant's parameters
# =================================================================================================

def feedback_steps(values: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Forward 3×3 matrices (n, 3, 3) of each row's feedback step (zoom / rotation / translate) as
    the engines apply it (:func:`bridge.visuals.procedural.feedback_matrix`: the
    cv2.getRotationMatrix2D convention, about the image centre)."""
    v = np.asarray(values, dtype=np.float64)
    scale = np.maximum(1e-3, 1.0 + v[:, _ORD_COL["zoom"]])
    a = np.radians(v[:, _ORD_COL["rotation"]])
    alpha, beta = scale * np.cos(a), scale * np.sin(a)
    cx, cy = width / 2.0 - 0.5, height / 2.0 - 0.5
    m = np.zeros((v.shape[0], 3, 3))
    m[:, 0, 0], m[:, 0, 1] = alpha, beta
    m[:, 1, 0], m[:, 1, 1] = -beta, alpha
    m[:, 0, 2] = (1 - alpha) * cx - beta * cy + v[:, _ORD_COL["translate_x"]] * width
    m[:, 1, 2] = beta * cx + (1 - alpha) * cy + v[:, _ORD_COL["translate_y"]] * height
    m[:, 2, 2] = 1.0
    return m


def cumulative_motion(values: np.ndarray, first: int, last: int, *, width: int, height: int) -> np.ndarray:
    """Forward 3×3 matrix of the feedback motion of rows first … last (inclusive), applied in order."""
    m = np.eye(3)
    for step in feedback_steps(values[first:last + 1], width=width, height=height):
        m = step @ m
    return m


def _segment_motion(plan: PreviewPlan, i: int) -> tuple[np.ndarray, np.ndarray]:
    """For the keyframe interval (keyframes[i], keyframes[i+1]]: the forward motion from the first
    keyframe to every frame of it (m, 3, 3), and to the second keyframe. Cached on the plan."""
    got = plan.motion_cache.get(i)
    if got is None:
        k0 = int(plan.keyframes[i])
        k1 = int(plan.keyframes[i + 1]) if i + 1 < plan.keyframes.size else plan.n_frames - 1
        steps = feedback_steps(plan.params.values[k0 + 1:k1 + 1], width=plan.width, height=plan.height)
        prefix = np.empty((steps.shape[0] + 1, 3, 3))
        prefix[0] = np.eye(3)
        for n, step in enumerate(steps):
            prefix[n + 1] = step @ prefix[n]
        got = plan.motion_cache[i] = (prefix, prefix[-1])
    return got


def _is_identity(m: np.ndarray) -> bool:
    return bool(np.abs(m[:2, :2] - np.eye(2)).max() < 2e-3 and np.abs(m[:2, 2]).max() < 0.25)


def colour_correction(from_row: np.ndarray, to_row: np.ndarray) -> np.ndarray:
    """3×4 colour matrix turning a frame rendered with ``from_row`` toward ``to_row``'s look.

    Undoes the keyframe's white flash (both engines: ``x·(1−f) + 255·f``, f = 0.85·flash, affine so
    exactly invertible), then applies the relative brightness gain, hue rotation and saturation,
    then the instant's own flash — so kicks hit on their own frame even between sparse keyframes.
    """
    from bridge.visuals.procedural import hue_rotation_matrix, saturation_matrix

    def col(row: np.ndarray, name: str) -> float:
        return float(row[_ORD_COL[name]])

    f0 = min(0.85 * col(from_row, "flash"), 0.95)
    f1 = 0.85 * col(to_row, "flash")
    g0 = min(2.0, max(0.05, 1.0 + col(from_row, "brightness")))
    g1 = min(2.0, max(0.0, 1.0 + col(to_row, "brightness")))
    gain = min(4.0, g1 / g0)
    s0 = max(0.05, 1.0 + col(from_row, "saturation"))
    s1 = max(0.0, 1.0 + col(to_row, "saturation"))
    dh = (col(to_row, "hue") - col(from_row, "hue")) * 360.0
    lin = gain * (hue_rotation_matrix(dh).astype(np.float64) @ saturation_matrix(min(4.0, s1 / s0)).astype(np.float64))
    # y = (1−f1)·L·(x − 255 f0)/(1 − f0) + 255 f1
    scale = (1.0 - f1) / (1.0 - f0)
    m = np.empty((3, 4))
    m[:, :3] = scale * lin
    m[:, 3] = -scale * 255.0 * f0 * lin.sum(axis=1) + 255.0 * f1
    return m


def compose_frame(plan: PreviewPlan, j: int,
                  neighbours: Sequence[tuple[int, np.ndarray] | tuple[int, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Frame ``j`` from one or two keyframe images: each is moved by the feedback motion between
    it and frame j (forward from a keyframe before j, backward from one after), colour-corrected from
    the parameter row it was rendered with (default: the plan's row of that keyframe; a stale
    keyframe of an earlier plan brings its own) to frame j's, then the two are cross-faded by
    distance. ``neighbours``: (keyframe index, image[, its row]). Returns uint8 (h, w, 3)."""
    import cv2

    values = plan.params.values
    w, h = plan.width, plan.height
    prepared = []
    for item in neighbours:
        k, img = item[0], item[1]
        row = item[2] if len(item) > 2 else values[k]
        if k == j:
            motion, inverse_map = np.eye(3), False
        else:
            i = plan.key_index[k] if k < j else plan.key_index[k] - 1  # the interval j lies in
            prefix, whole = _segment_motion(plan, i)
            q = prefix[j - int(plan.keyframes[i])]
            if k < j:
                motion, inverse_map = q, False
            else:  # frame j = the later keyframe sampled through the motion j → k
                motion, inverse_map = whole @ np.linalg.inv(q), True
        prepared.append((k, img, row, motion, inverse_map))
    warp = not all(_is_identity(m) for _, _, _, m, _ in prepared)
    layers: list[tuple[int, np.ndarray]] = []
    for k, img, row, motion, inverse_map in prepared:
        out = cv2.transform(img, colour_correction(row, values[j]).astype(np.float32))
        if warp:
            # 4 channels: OpenCV's warpAffine has a vector path for 4-channel uint8 (≈2.5× faster
            # than 3 channels, conversions included).
            out = cv2.cvtColor(out, cv2.COLOR_RGB2RGBA)
            if not _is_identity(motion):
                flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse_map else 0)
                out = cv2.warpAffine(out, motion[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        layers.append((abs(j - k), out))
    if len(layers) == 1:
        out = layers[0][1]
    else:
        (da, a), (db, b) = layers
        out = cv2.addWeighted(a, db / float(da + db), b, da / float(da + db), 0.0)
    if out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    return out


# =================================================================================================
# The scheduler
# =================================================================================================

EngineFactory = Callable[[str, Mapping[str, Any]], Any]


def default_engine_factory(name: str, settings: Mapping[str, Any]) -> Any:
    from bridge.visuals import get_engine

    return get_engine(name, **dict(settings))


@dataclass
class _Pass:
    pass_id: int
    plan: PreviewPlan
    pending: dict[int, str]   # keyframe frame index → key, not yet in memory
    token: CancelToken = field(default_factory=CancelToken)
    rendered: int = 0
    loaded: int = 0
    finished: bool = False


@dataclass
class _Fallback:
    engine: Any
    plan: PreviewPlan
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_frame_index: int = -1
    last_frame: np.ndarray | None = None


class PreviewScheduler:
    """Keeps the preview frame cache warm for the latest inputs; answers ``frame_at(t)``.

    Parameters
    ----------
    cache : FrameCache
    emit : callable(event)
        Receives the events above (from the scheduler's threads); must not block.
    playhead : callable() -> (seconds, playing)
        Where the transport is now (``TransportClock.now()``), read by the worker per keyframe.
    engine_factory : callable(name, settings) -> Engine
        Builds the keyframe engine (default: :func:`bridge.visuals.get_engine`); only ever called and
        used on the model worker thread.
    long_side : preview resolution (pixels on the long edge).
    debounce_s : quiet time after the last update before a regeneration pass starts.
    warmup_frames : warm-up frames before each keyframe of a sequential (feedback) engine.
    probe : render the playhead's keyframe at once after an edit (before the debounced pass).
    lcm_options : extra LCM engine settings (e.g. ``{"device": "cpu", "tiny_vae": False}``).
    fallback_working_scale : the procedural fallback of ``frame_at`` works at this fraction of the
        preview size (0.25 ≈ 2 ms a frame at 384×216) so a frame is always there in time.
    """

    def __init__(self, *, cache: FrameCache, emit: Callable[[object], None] = lambda e: None,
                 playhead: Callable[[], tuple[float, bool]] = lambda: (0.0, False),
                 engine_factory: EngineFactory | None = None, long_side: int = DEFAULT_PREVIEW_LONG_SIDE,
                 debounce_s: float = DEFAULT_DEBOUNCE_S, warmup_frames: int = DEFAULT_WARMUP_FRAMES,
                 probe: bool = True, lcm_options: Mapping[str, Any] | None = None,
                 fallback_working_scale: float = 0.25, start: bool = True) -> None:
        if long_side < 16:
            raise ValueError(f"long_side {long_side} must be at least 16 pixels")
        if debounce_s < 0 or warmup_frames < 0:
            raise ValueError("debounce_s and warmup_frames must be >= 0")
        self.cache = cache
        self._emit = emit
        self._playhead = playhead
        self._factory = engine_factory or default_engine_factory
        self.long_side = int(long_side)
        self.debounce_s = float(debounce_s)
        self.warmup_frames = int(warmup_frames)
        self.probe = probe
        self.lcm_options = dict(lcm_options or {})
        self.fallback_working_scale = fallback_working_scale
        self.evaluator = ParamEvaluator()
        self._keyframes_memo: tuple[tuple, np.ndarray] | None = None  # coordinator-owned
        self._looks_memo: tuple | None = None  # (analysis, sections, seed, looks), coordinator-owned
        self._song_engine_memo: tuple | None = None  # (analysis, engine settings, (seed, settings))

        self._cond = threading.Condition()
        self._stop = False
        self._inputs: PreviewInputs | None = None
        self._inputs_gen = 0
        self._planned_gen = 0
        self._plan: PreviewPlan | None = None
        self._newest_gen = 0  # generation of the newest parameters handed to the worker
        self._probe_taken = threading.Event()
        self._pass_due: float | None = None
        self._planning = False
        self._pass: _Pass | None = None
        self._pass_counter = 0
        self._probe_item: tuple[PreviewPlan, int, str] | None = None
        self._in_flight: tuple[str, ...] = ()
        self._latency_recorded_gen = 0
        self._latency_lock = threading.Lock()
        self._last_edit_to_frame_ms: float | None = None
        self._last_render_ms: float | None = None
        self._fallback: _Fallback | None = None
        self._frame_sources = {"exact": 0, "blend": 0, "stale": 0, "fallback": 0, "blank": 0}
        #: keyframe frame index → (key, parameter row, generation) of the newest frame rendered there.
        self._last_good: dict[int, tuple[str, np.ndarray, int]] = {}
        #: What the last frame_at returned: "exact", "blend", "stale", "fallback" or "blank".
        self.last_frame_source = "blank"
        self._blank: np.ndarray | None = None
        #: frame_at's last composed frame: (plan, frame index, [(keyframe, image)…], frame).
        self._composed: tuple[PreviewPlan, int, list[tuple[int, np.ndarray]], np.ndarray] | None = None
        self._idle = threading.Event()
        self._idle.set()
        # Worker-owned (never touched by other threads):
        self._engine: Any = None
        self._engine_spec: EngineSpec | None = None
        self._engine_ctx: RenderContext | None = None
        self._engine_failed: tuple[EngineSpec, int] | None = None
        self._threads: list[threading.Thread] = []
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        for name, target in (("stembridge-preview-coordinator", self._coordinator_loop),
                             ("stembridge-model-worker", self._worker_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            if self._pass is not None:
                self._pass.token.cancel()
            self._cond.notify_all()
        cancel = getattr(self._engine, "cancel", None)
        if callable(cancel):
            cancel()
        for t in self._threads:
            t.join(timeout_s)
        self._threads = []
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001 - closing must not raise at shutdown
                log.exception("closing the preview engine failed")
            self._engine = None

    # -- inputs ------------------------------------------------------------------------------
    def update(self, inputs: PreviewInputs) -> int:
        """Hand over new inputs (cheap; the work happens on the coordinator). Returns its generation."""
        with self._cond:
            self._inputs = inputs
            self._inputs_gen += 1
            self._idle.clear()
            self._cond.notify_all()
            return self._inputs_gen

    @property
    def plan(self) -> PreviewPlan | None:
        return self._plan

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until every update is planned and its pass has finished (tests, CLI, benchmarks)."""
        return self._idle.wait(timeout_s)

    def wakeup(self) -> None:
        """The playhead moved: re-rank the pending keyframes (called by the Session on seeks)."""
        with self._cond:
            self._cond.notify_all()

    # -- coordinator -------------------------------------------------------------------------
    def _coordinator_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    if self._inputs_gen > self._planned_gen:
                        break
                    now = time.monotonic()
                    if self._pass_due is not None and now >= self._pass_due:
                        break
                    self._cond.wait(None if self._pass_due is None else self._pass_due - now)
                gen, inputs = self._inputs_gen, self._inputs
                new_inputs = gen > self._planned_gen
                self._planned_gen = gen
                self._planning = new_inputs
            if new_inputs and inputs is not None:
                try:
                    self._replan(gen, inputs)
                finally:
                    with self._cond:
                        self._planning = False
                        self._maybe_idle()
            else:
                self._start_pass()

    def _draft_plan(self, gen: int, inputs: PreviewInputs) -> tuple[PreviewPlan, list[MappingProblem], float]:
        """The plan without its keys (``keys=()``): parameters, keyframes, engine, size."""
        from bridge.export.render import section_looks

        project, analysis = inputs.project, inputs.analysis
        t0 = time.perf_counter()
        fps = project.render.fps_fraction
        looks = inputs.sections
        if looks is None:
            memo = self._looks_memo
            # the shader engine's section looks also follow the engine and its look
            engine_key = (project.engine.seed, project.engine.name, project.engine.look)
            if (memo is not None and memo[0] is analysis and memo[1] == project.sections
                    and memo[2] == engine_key):
                looks = memo[3]
            else:
                looks = section_looks(project, analysis)
                self._looks_memo = (analysis, project.sections, engine_key, looks)
        params, problems = self.evaluator.evaluate(
            project.mappings, analysis, looks, fps=fps, stem_roles={s.name: s.role for s in project.stems})
        evaluate_ms = (time.perf_counter() - t0) * 1000.0
        kf_args = (analysis.beat_grid, fps, len(params), project.engine.keyframe_every_beats,
                   tuple(s.start_s for s in looks))
        if self._keyframes_memo is None or not _same_args(self._keyframes_memo[0], kf_args):
            keyframes = keyframe_frames(kf_args[0], fps=fps, n_frames=kf_args[2], every_beats=kf_args[3],
                                        section_starts_s=kf_args[4])
            keyframes.flags.writeable = False
            self._keyframes_memo = (kf_args, keyframes)
        keyframes = self._keyframes_memo[1]
        width, height = preview_size(project.render.width, project.render.height, long_side=self.long_side)
        from bridge.visuals.character import effective_engine

        # as the export does; memoised per analysis and engine block (a plan is built on every edit)
        memo = self._song_engine_memo
        if memo is None or memo[0] is not analysis or memo[1] != project.engine:
            memo = self._song_engine_memo = (analysis, project.engine, effective_engine(project.engine, analysis))
        run_seed, song_settings = memo[2]
        spec = engine_spec_for(project.engine, long_side=self.long_side, lcm_options=self.lcm_options,
                               song_settings=song_settings)
        plan = PreviewPlan(generation=gen, edit_time=inputs.edit_time, built_at=time.monotonic(), fps=fps,
                           width=width, height=height, seed=run_seed, params=params, looks=tuple(looks),
                           keyframes=keyframes, keys=(), engine=spec,
                           warmup_frames=0 if spec.batched else self.warmup_frames)
        return plan, problems, evaluate_ms

    @staticmethod
    def _with_keys(draft: PreviewPlan, previous: PreviewPlan | None) -> PreviewPlan:
        """The draft with every keyframe's key (reusing ``previous``'s where the rows did not change)."""
        keys = compute_keys(draft.params, draft.looks, draft.keyframes, engine=draft.engine, width=draft.width,
                            height=draft.height, seed=draft.seed, warmup_frames=draft.warmup_frames,
                            previous=previous)
        return dataclasses.replace(draft, keys=keys)

    def _probe_for(self, draft: PreviewPlan, old: PreviewPlan | None) -> tuple[PreviewPlan, int, str] | None:
        """The keyframe at the playhead if the edit changed it, as (the draft plan, frame, key).

        Only that keyframe's key is computed here, so the worker can start on it before the keys
        of the whole song are (they grow with the song's length; this does not)."""
        if not (self.probe and draft.keyframes.size):
            return None
        seconds, playing = self._playhead()
        i = self._ranked(draft, np.arange(draft.keyframes.size), seconds, playing, 1)
        if not i.size:
            return None
        k = int(draft.keyframes[i[0]])
        key = compute_keys(draft.params, draft.looks, draft.keyframes[i[:1]], engine=draft.engine,
                           width=draft.width, height=draft.height, seed=draft.seed,
                           warmup_frames=draft.warmup_frames)[0]
        old_i = None if old is None else old.key_index.get(k)
        if old_i is not None and old.keys[old_i] == key:
            return None
        return draft, k, key

    def _replan(self, gen: int, inputs: PreviewInputs) -> None:
        old = self._plan
        try:
            draft, problems, evaluate_ms = self._draft_plan(gen, inputs)
            probe = self._probe_for(draft, old)
        except BridgeError as e:
            self._emit(PreviewError(f"the preview could not be updated: {e}"))
            return
        except Exception as e:  # noqa: BLE001 - a bug here must not kill the preview thread
            log.exception("building the preview plan failed")
            self._emit(PreviewError(f"the preview could not be updated ({type(e).__name__}: {e})"))
            return
        # frame_at's procedural fallback follows the new parameters before the worker starts on them.
        fb = self._fallback
        if fb is None or fb.plan.render_context() != draft.render_context():
            self._fallback = self._make_fallback(draft)
        else:  # same engine and context, new parameters
            self._fallback = _Fallback(engine=fb.engine, plan=draft, lock=fb.lock)
        with self._cond:
            # The probe goes to the worker first; the running pass is stale whatever the keys say.
            self._probe_item = probe
            self._newest_gen = gen
            self._cancel_pass()
            self._cond.notify_all()
            hand_over = probe is not None and not self._in_flight
            if hand_over:
                self._probe_taken.clear()
        if hand_over:
            # Block briefly so the idle worker gets the GIL and starts on the probe now; the rest of
            # the plan (every keyframe's key, the diff) is then worked out while the model runs
            # instead of before it (without this the worker waits for this thread's time slice).
            self._probe_taken.wait(PROBE_HANDOVER_S)
        try:
            plan = self._with_keys(draft, old)
        except Exception as e:  # noqa: BLE001 - as above
            log.exception("building the preview plan failed")
            self._emit(PreviewError(f"the preview could not be updated ({type(e).__name__}: {e})"))
            return
        with self._cond:
            # Published even if newer inputs arrived meanwhile: newer parameters beat none.
            if self._plan is None or self._plan.generation < gen:
                self._plan = plan
            self._cancel_pass()
            wanted = set(plan.keys)
            if self._in_flight and not set(self._in_flight) <= wanted:
                cancel = getattr(self._engine, "cancel", None)
                if callable(cancel):
                    cancel()  # the frame being rendered is stale: stop it within one model step
            self._pass_due = time.monotonic() + self.debounce_s
            self._cond.notify_all()
        changed_frames, changed_keyframes = _diff_plans(old, plan)
        for p in problems:
            self._emit(p)
        self._emit(ParamsUpdated(gen, plan.n_frames, changed_frames, tuple(changed_keyframes), evaluate_ms))
        if probe is None and plan.edit_time is not None:
            self._record_latency(plan, time.monotonic(), only_if_cached=True)

    def _cancel_pass(self) -> None:
        """Under the lock: the running pass is for older inputs; stop it and report it cancelled."""
        stale = self._pass
        if stale is not None and not stale.finished:
            stale.token.cancel()
            stale.finished = True
            self._emit(PreviewPassFinished(stale.pass_id, stale.plan.generation, stale.rendered,
                                           stale.loaded, cancelled=True))
        self._pass = None

    def _make_fallback(self, plan: PreviewPlan) -> _Fallback | None:
        try:
            from bridge.visuals.procedural import ProceduralEngine

            engine = ProceduralEngine(working_scale=self.fallback_working_scale)
            engine.start(plan.render_context())
            return _Fallback(engine=engine, plan=plan)
        except Exception as e:  # noqa: BLE001 - frame_at then shows the cached frames or black
            log.warning("procedural fallback unavailable: %s", e)
            return None

    def _start_pass(self) -> None:
        with self._cond:
            self._pass_due = None
            plan = self._plan
            if plan is None or self._stop:
                self._maybe_idle()
                return
            pending = {int(k): key for k, key in zip(plan.keyframes.tolist(), plan.keys, strict=True)
                       if not self.cache.in_memory(key)}
            self._pass_counter += 1
            self._pass = _Pass(self._pass_counter, plan, pending)
            # Emitted under the lock: the worker cannot report a keyframe of this pass before it.
            self._emit(PreviewPassStarted(self._pass_counter, plan.generation, tuple(sorted(pending))))
            self._cond.notify_all()
            self._maybe_finish_pass()
            self._maybe_idle()

    def _maybe_finish_pass(self) -> None:
        p = self._pass
        if p is not None and not p.finished and not p.pending:
            p.finished = True
            self._emit(PreviewPassFinished(p.pass_id, p.plan.generation, p.rendered, p.loaded, cancelled=False))

    def _maybe_idle(self) -> None:
        busy = (self._inputs_gen > self._planned_gen or self._planning or self._pass_due is not None
                or self._probe_item is not None
                or (self._pass is not None and not self._pass.finished) or bool(self._in_flight))
        if not busy:
            self._idle.set()

    # -- ranking -----------------------------------------------------------------------------
    @staticmethod
    def _ranked(plan: PreviewPlan, candidates: np.ndarray, seconds: float, playing: bool, n: int) -> np.ndarray:
        """Indices (into plan.keyframes) of the best ``n`` of ``candidates``: nearest the playhead,
        ahead of it while playing (the keyframe just behind still ranks, it is being blended now)."""
        if candidates.size == 0:
            return candidates
        frames = plan.keyframes[candidates].astype(np.float64)
        d = frames - seconds * float(plan.fps)
        score = np.where(d >= 0, d, -d * BEHIND_PENALTY) if playing else np.abs(d)
        n = min(n, candidates.size)
        best = np.argpartition(score, n - 1)[:n] if n < candidates.size else np.arange(candidates.size)
        return candidates[best[np.argsort(score[best], kind="stable")]]

    # -- worker ------------------------------------------------------------------------------
    def _next_items(self) -> tuple[str, PreviewPlan, list[tuple[int, str]], _Pass | None] | None:
        """Under the lock: the probe, else the best pending keyframes of the pass; None = stop."""
        while True:
            if self._stop:
                return None
            if self._probe_item is not None:
                plan, k, key = self._probe_item
                self._probe_item = None
                self._probe_taken.set()
                if plan.generation == self._newest_gen:
                    return "probe", plan, [(k, key)], None
                continue
            p = self._pass
            if p is not None and not p.finished and p.pending:
                seconds, playing = self._playhead()
                frames = np.fromiter(p.pending, dtype=np.int64, count=len(p.pending))
                index = p.plan.key_index
                cand = np.array([index[int(f)] for f in frames], dtype=np.int64)
                n = self._batch_size() if p.plan.engine.batched else 1
                best = self._ranked(p.plan, cand, seconds, playing, n)
                items = [(int(p.plan.keyframes[i]), p.plan.keys[i]) for i in best]
                return "pass", p.plan, items, p
            self._maybe_idle()
            self._cond.wait()

    def _batch_size(self) -> int:
        return max(1, int(getattr(self._engine, "max_batch", 1) or 1))

    def _worker_loop(self) -> None:
        while True:
            with self._cond:
                got = self._next_items()
                if got is None:
                    return
                kind, plan, items, p = got
                self._in_flight = tuple(key for _, key in items)
            try:
                self._work(kind, plan, items, p)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                log.exception("preview worker failed")
                self._emit(PreviewError(f"rendering preview keyframes failed ({type(e).__name__}: {e})"))
                with self._cond:
                    if p is not None:
                        for k, _ in items:
                            p.pending.pop(k, None)
            finally:
                with self._cond:
                    self._in_flight = ()
                    if p is not None:
                        self._maybe_finish_pass()
                    self._maybe_idle()

    def _done(self, plan: PreviewPlan, p: _Pass | None, k: int, key: str, *, probe: bool, from_cache: bool,
              render_ms: float) -> None:
        now = time.monotonic()
        last = self._last_good.get(k)
        if last is None or last[2] <= plan.generation:  # a late frame of an older plan must not win
            self._last_good[k] = (key, plan.params.values[k], plan.generation)
        latency = self._record_latency(plan, now)
        with self._cond:
            if p is not None:
                p.pending.pop(k, None)
                if from_cache:
                    p.loaded += 1
                else:
                    p.rendered += 1
        if not from_cache:
            self._last_render_ms = render_ms
        self._emit(KeyframeRendered(k, plan.generation, None if p is None else p.pass_id, probe, from_cache,
                                    render_ms, latency, now))

    def _record_latency(self, plan: PreviewPlan, now: float, *, only_if_cached: bool = False) -> float | None:
        """Edit → frame: the first keyframe of a generation that is ready (once per generation)."""
        if plan.edit_time is None or plan.generation != self._newest_gen:
            return None
        if only_if_cached:
            seconds, playing = self._playhead()
            i = self._ranked(plan, np.arange(plan.keyframes.size), seconds, playing, 1)
            if not i.size or not self.cache.in_memory(plan.keys[i[0]]):
                return None
        with self._latency_lock:
            if plan.generation <= self._latency_recorded_gen:
                return None
            self._latency_recorded_gen = plan.generation
            self._last_edit_to_frame_ms = (now - plan.edit_time) * 1000.0
            return self._last_edit_to_frame_ms

    def _work(self, kind: str, plan: PreviewPlan, items: list[tuple[int, str]], p: _Pass | None) -> None:
        token = p.token if p is not None else CancelToken()
        todo = []
        for k, key in items:
            if self.cache.get(key) is not None:  # in memory, or on disk (then loaded into memory)
                self._done(plan, p, k, key, probe=kind == "probe", from_cache=True, render_ms=0.0)
            else:
                todo.append((k, key))
        if not todo:
            return
        if self._engine_failed == (plan.engine, plan.generation):  # reported once; retried on the next edit
            with self._cond:
                if p is not None:
                    for k, _ in todo:
                        p.pending.pop(k, None)
            return
        engine = self._ensure_engine(plan)
        if engine is None:
            with self._cond:
                if p is not None:
                    for k, _ in todo:
                        p.pending.pop(k, None)
            return
        t0 = time.perf_counter()
        try:
            if plan.engine.batched:
                frames = self._render_batch(engine, plan, [k for k, _ in todo], token)
            else:
                frames = [self._render_sequential(engine, plan, k, token) for k, _ in todo[:1]]
                todo = todo[:1]
        except Cancelled:
            self._engine_ctx = None  # an engine-level cancel sticks until the next start()
            return
        except BridgeError as e:
            self._emit(PreviewError(f"keyframe(s) {[k for k, _ in todo]} failed to render: {e}"))
            with self._cond:
                if p is not None:
                    for k, _ in todo:
                        p.pending.pop(k, None)
            self._engine_ctx = None
            return
        render_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(todo))
        for (k, key), frame in zip(todo, frames, strict=True):
            self.cache.put(key, frame, persist=False)
            self._done(plan, p, k, key, probe=kind == "probe", from_cache=False, render_ms=render_ms)
        for _, key in todo:  # disk copies after the frames are reported (off the edit → frame path)
            self.cache.persist(key)

    def _ensure_engine(self, plan: PreviewPlan) -> Any:
        spec = plan.engine
        if self._engine is None or self._engine_spec != spec:
            if self._engine is not None:
                try:
                    self._engine.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing the previous preview engine failed")
            self._engine = None
            self._engine_ctx = None
            try:
                self._engine = self._factory(spec.name, dict(spec.settings))
            except Exception as e:  # noqa: BLE001 - BridgeError, or a broken engine: same report
                self._engine_failed = (spec, plan.generation)
                self._emit(PreviewError(f"the {spec.name} engine is not available for the preview: {e}"))
                return None
            self._engine_spec = spec
            self._engine_failed = None
        ctx = plan.render_context()
        if self._engine_ctx != ctx:
            try:
                self._engine.start(ctx)
            except Exception as e:  # noqa: BLE001
                self._engine_failed = (spec, plan.generation)
                self._engine = None
                self._emit(PreviewError(f"the {spec.name} engine could not start: {e}"))
                return None
            self._engine_ctx = ctx
        return self._engine

    def _reset_feedback(self, engine: Any, plan: PreviewPlan) -> None:
        """Clear a feedback engine's state before a keyframe's warm-up (deterministic keyframes).

        ``start(ctx)`` does it but also rebuilds per-resolution geometry and every section's
        pattern (≈16 ms at 384×216 for the procedural engine, 5× a frame); an engine may offer a
        cheaper ``reset()`` (the procedural engine clears its feedback buffer).
        """
        reset = getattr(engine, "reset", None)
        if callable(reset):
            reset()
            return
        engine.start(plan.render_context())

    def _render_sequential(self, engine: Any, plan: PreviewPlan, k: int, token: CancelToken) -> np.ndarray:
        params = plan.params
        self._reset_feedback(engine, plan)
        frame = None
        for j in range(max(0, k - plan.warmup_frames), k + 1):
            token.raise_if_cancelled("the preview pass")
            frame = engine.render(j, params.row(j), int(params.section_index[j]), float(params.section_mix[j]))
        return np.ascontiguousarray(frame)

    def _render_batch(self, engine: Any, plan: PreviewPlan, frames: list[int], token: CancelToken) -> list[np.ndarray]:
        from bridge.visuals.lcm import FrameJob

        token.raise_if_cancelled("the preview pass")
        params = plan.params
        jobs = [FrameJob(frame_index=k, params=params.row(k), section_index=int(params.section_index[k]),
                         section_mix=float(params.section_mix[k]), init_rgb=None) for k in frames]
        return [np.ascontiguousarray(f) for f in engine.render_batch(jobs)]

    # -- frame_at ----------------------------------------------------------------------------
    def frame_at(self, t_seconds: float) -> np.ndarray:
        """The best frame for song time ``t_seconds`` now (RGB uint8 (h, w, 3) at preview size;
        read-only when it comes straight from the cache). Never waits for the model worker."""
        plan = self._plan
        if plan is None or plan.n_frames == 0:
            fb = self._fallback  # the first plan's parameters are there before its keys
            if plan is None and fb is not None and fb.plan.n_frames:
                j = int(math.floor(float(t_seconds) * float(fb.plan.fps) + 1e-6))
                return self._fallback_frame(fb.plan, min(max(j, 0), fb.plan.n_frames - 1))
            self._count("blank")
            return self._blank_frame(plan)
        n = plan.n_frames
        j = int(math.floor(float(t_seconds) * float(plan.fps) + 1e-6))
        j = min(max(j, 0), n - 1)
        kf = plan.keyframes
        i = int(np.searchsorted(kf, j, side="right")) - 1
        if i >= 0 and kf[i] == j:
            hit = self.cache.peek(plan.keys[i])
            if hit is not None:
                self._count("exact")
                return hit
        sec = plan.params.section_index
        mixing = plan.params.section_mix[j] < 1.0
        neighbours = []
        stale = False
        for idx in (i, i + 1):
            if not 0 <= idx < kf.size:
                continue
            k = int(kf[idx])
            if not (sec[k] == sec[j] or mixing) or (k == j and idx == i + 1):
                continue
            img = self.cache.peek(plan.keys[idx])
            row = plan.params.values[k]
            if img is None:
                # Not rendered for this plan yet: the last frame rendered at this keyframe (an
                # earlier edit's), corrected from the row it was rendered with. After an edit the
                # picture keeps its look and follows the new parameters until the new one is ready.
                last = self._last_good.get(k)
                if last is not None:
                    img = self.cache.peek(last[0])
                    row = last[1]
                    stale = img is not None
            if img is not None and img.shape[:2] == (plan.height, plan.width):
                neighbours.append((k, img, row))
            if k == j:
                break  # j is this keyframe: it alone is the frame
        if neighbours:
            self._count("stale" if stale else "blend")
            # A 60 Hz display asks twice for each frame of a 30 fps song: the second time, the same
            # plan, frame and keyframe images give the same picture, so it is not composed again.
            last = self._composed
            if (last is not None and last[0] is plan and last[1] == j and len(last[2]) == len(neighbours)
                    and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(last[2], neighbours, strict=True))):
                return last[3]
            out = compose_frame(plan, j, neighbours)
            out.flags.writeable = False
            self._composed = (plan, j, [(k, img) for k, img, _ in neighbours], out)
            return out
        return self._fallback_frame(plan, j)

    def _count(self, source: str) -> None:
        self._frame_sources[source] += 1  # statistics only: a lost increment under contention is fine
        self.last_frame_source = source

    def _fallback_frame(self, plan: PreviewPlan, j: int) -> np.ndarray:
        fb = self._fallback
        if fb is None:
            self._count("blank")
            return self._blank_frame(plan)
        j = min(j, fb.plan.n_frames - 1)
        if not fb.lock.acquire(blocking=False):
            # Another caller is rendering the fallback: show its previous frame rather than wait.
            self._count("fallback")
            return fb.last_frame if fb.last_frame is not None else self._blank_frame(plan)
        try:
            if fb.last_frame_index != j or fb.last_frame is None:
                p = fb.plan.params
                frame = fb.engine.render(j, p.row(j), int(p.section_index[j]), float(p.section_mix[j]))
                frame.flags.writeable = False
                fb.last_frame, fb.last_frame_index = frame, j
            self._count("fallback")
            return fb.last_frame
        finally:
            fb.lock.release()

    def _blank_frame(self, plan: PreviewPlan | None) -> np.ndarray:
        w, h = (plan.width, plan.height) if plan is not None else (self.long_side, max(16, self.long_side * 9 // 16))
        if self._blank is None or self._blank.shape[:2] != (h, w):
            blank = np.zeros((h, w, 3), dtype=np.uint8)
            blank.flags.writeable = False
            self._blank = blank
        return self._blank

    # -- status ------------------------------------------------------------------------------
    def status(self) -> PreviewStatus:
        plan = self._plan
        with self._cond:
            p = self._pass
            active = p is not None and not p.finished
            if plan is None:
                total = done = pending = 0
            else:
                total = int(plan.keyframes.size)
                if p is not None and p.plan is plan and not p.finished:
                    pending = len(p.pending)
                else:
                    pending = sum(1 for key in plan.keys if not self.cache.in_memory(key))
                done = total - pending
            return PreviewStatus(
                generation=0 if plan is None else plan.generation, keyframes_total=total, keyframes_done=done,
                keyframes_pending=pending, pass_active=active, last_edit_to_frame_ms=self._last_edit_to_frame_ms,
                last_render_ms=self._last_render_ms, frame_sources=dict(self._frame_sources),
            )


def _diff_plans(old: PreviewPlan | None, new: PreviewPlan) -> tuple[int, list[int]]:
    """(frames whose parameter row or section changed, keyframes whose key changed)."""
    if old is None:
        return new.n_frames, new.keyframes.tolist()
    old_keys = dict(zip(old.keyframes.tolist(), old.keys, strict=True))
    changed_kf = [k for k, key in zip(new.keyframes.tolist(), new.keys, strict=True) if old_keys.get(k) != key]
    if len(old.params) != len(new.params) or old.params.names != new.params.names:
        return new.n_frames, changed_kf  # another length, or a shader:NAME column came or went
    a, b = old.params, new.params
    rows = (np.any(a.values != b.values, axis=1) | (a.section_index != b.section_index)
            | (a.section_mix != b.section_mix))
    return int(rows.sum()), changed_kf
