"""A preview plan: everything the frames of one generation of the inputs depend on, and their keys.

:class:`PreviewPlan` (immutable) holds the song's FrameParams, the keyframes, the engine and the
preview size; :func:`compute_keys` gives each keyframe its content key (see
:mod:`bridge.preview.cache`): equal keys mean equal pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from bridge.analysis.types import SongAnalysis
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES
from bridge.preview.cache import frame_key
from bridge.visuals.base import RenderContext, SectionLook

#: Preview frames are this many pixels on their long side (the LCM engine's preview default).
DEFAULT_PREVIEW_LONG_SIDE = 384
#: Key format version: bump when the key's meaning changes.
_KEY_VERSION = "preview-key-1"

_ORD_COL = {name: i for i, name in enumerate(PARAMETER_NAMES)}


def preview_size(width: int, height: int, *, long_side: int = DEFAULT_PREVIEW_LONG_SIDE) -> tuple[int, int]:
    """The preview resolution: the output aspect ratio with ``long_side`` pixels on the long edge
    (never larger than the output), both edges even (≥ 16)."""
    scale = min(1.0, long_side / max(width, height))
    w = max(16, int(round(width * scale / 2)) * 2)
    h = max(16, int(round(height * scale / 2)) * 2)
    return w, h



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

    def keyframe_position(self, k: int) -> int | None:
        """Position of keyframe ``k`` (a frame index) in ``keyframes`` / ``keys``; None if it is none."""
        i = int(np.searchsorted(self.keyframes, k))
        return i if i < self.keyframes.size and int(self.keyframes[i]) == k else None

    def render_context(self) -> RenderContext:
        return RenderContext(width=self.width, height=self.height, fps=self.fps, sections=self.looks,
                             seed=self.seed, mode="preview")


def _section_cond(looks: Sequence[SectionLook], i: int) -> str:
    if 0 <= i < len(looks):
        s = looks[i]
        return repr((i, s.name, s.prompt, s.negative_prompt, s.seed, s.style, s.look, s.transition, s.hit))
    return "-"


def _key_head(engine: EngineSpec, width: int, height: int, fps: Fraction, seed: int) -> Any:
    """The blake2b state after the key's head fields, copied per keyframe (cheaper than hashing
    them again for each)."""
    head = frame_key(_KEY_VERSION, engine.name, engine.code_version, repr(engine.key_settings), "preview",
                     width, height, str(fps), seed)
    return hashlib.blake2b(head.encode(), digest_size=16)


def compute_keys(params: FrameParams, looks: Sequence[SectionLook], keyframes: np.ndarray, *,
                 engine: EngineSpec, width: int, height: int, seed: int, warmup_frames: int) -> tuple[str, ...]:
    """One content key per keyframe (see :mod:`bridge.preview.cache`).

    A frame's conditioning is its section's (index, name, prompt, negative prompt, seed, style),
    plus the previous section's while it transitions in (mix < 1) and the next one's when
    ``prompt_mix`` > 0 — exactly what the engines read. Sequential (feedback) engines add the
    warm-up rows before the keyframe as its anchor.
    """
    values, sec, mix = params.values, params.section_index, params.section_mix
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
