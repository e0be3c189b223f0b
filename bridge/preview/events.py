"""The preview's events and status (plain frozen dataclasses; the Session forwards the events to
``poll_events()`` and re-exports them as part of its event API). numpy-free, so cheap to import."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


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

