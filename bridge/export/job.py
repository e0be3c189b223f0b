"""What a render is, resolved from a project: the frame range and the job a worker renders.

Kept apart from :mod:`bridge.export.render` (which builds jobs and dispatches them) so that the
segment and cluster renderers depend on the job, not on the dispatcher that calls them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from bridge.errors import RenderError
from bridge.project.schema import RenderSettings
from bridge.visuals.base import RenderContext

if TYPE_CHECKING:
    from bridge.mapping.frame_params import FrameParams

__all__ = ["RenderJob", "RenderRange", "frame_range"]


@dataclass(frozen=True)
class RenderRange:
    start_frame: int
    n_frames: int
    fps: Fraction

    @property
    def start_seconds(self) -> float:
        return self.start_frame / self.fps

    @property
    def duration_seconds(self) -> float:
        return self.n_frames / self.fps


def frame_range(duration_seconds: float, fps: Fraction, *, start_s: float | None = None,
                end_s: float | None = None) -> RenderRange:
    """Frames [start, end) at ``fps``; frame k shows song time k / fps. Raises RenderError on a bad range."""
    start = 0.0 if start_s is None else float(start_s)
    end = duration_seconds if end_s is None else min(float(end_s), duration_seconds)
    if start < 0 or start >= end:
        raise RenderError(
            f"render range --start {start:g} --end {end:g} is empty or negative; the song is "
            f"{duration_seconds:.2f} s long, pick 0 <= start < end <= {duration_seconds:.2f}."
        )
    first = math.floor(start * fps + Fraction(1, 1000))
    last = math.ceil(end * fps - Fraction(1, 1000))
    return RenderRange(first, max(1, last - first), fps)



@dataclass(frozen=True)
class RenderJob:
    """Everything a render needs, resolved from the project: a pure description of the frames.

    Picklable (it is what a Ray task receives): the engine is named, not built; ``params`` covers
    the render range plus the pre-roll before it; ``audio`` is the soundtrack of the range (the
    driver muxes it; workers never need it).
    """

    engine_key: str
    engine_settings: dict
    context: RenderContext
    params: FrameParams
    range: RenderRange
    settings: RenderSettings
    audio: np.ndarray | None
    #: Frames that may be rendered before a segment to re-warm feedback state.
    preroll_frames: int
    #: Candidate cut frames (section starts, downbeats, diffusion keyframes), ascending.
    boundaries: tuple[int, ...] = ()

    def without_audio(self) -> RenderJob:
        from dataclasses import replace

        return replace(self, audio=None)
