"""What a render is, resolved from a project: the frame range and the job a worker renders.

Kept apart from :mod:`bridge.export.render` (which builds jobs and dispatches them) so that the
segment and cluster renderers depend on the job, not on the dispatcher that calls them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from bridge.errors import RenderError
from bridge.project.schema import RenderSettings
from bridge.visuals.base import RenderContext, SectionLook

if TYPE_CHECKING:
    from bridge.mapping.frame_params import FrameParams

__all__ = ["PREROLL_SECONDS", "RenderJob", "RenderRange", "apply_fade", "check_fades", "engine_preroll_frames",
           "fade_envelope", "frame_range"]

#: Seconds of frames rendered (and thrown away) before a range that starts mid-song, so feedback
#: trails look as they would in the full render instead of starting from black.
PREROLL_SECONDS = 2.0


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
    if not 0 <= start < end:  # (False for NaN too)
        # the values as given: the clamped end (the song's length) read as if the user had typed it
        asked = " ".join(f"--{name} {float(v):g}" for name, v in (("start", start_s), ("end", end_s)) if v is not None)
        why = ("starts at or after the song's end"
               if 0 <= start < (math.inf if end_s is None else float(end_s)) else "is empty or negative")
        raise RenderError(
            f"render range {asked} {why}; the song is {duration_seconds:.2f} s long, "
            f"pick 0 <= start < end <= {duration_seconds:.2f}."
        )
    first = math.floor(start * fps + Fraction(1, 1000))
    last = math.ceil(end * fps - Fraction(1, 1000))
    return RenderRange(first, max(1, last - first), fps)


def check_fades(fade_in_s: float, fade_out_s: float, duration_seconds: float) -> tuple[float, float]:
    """The fade lengths as floats; RenderError when one is negative or not a number, or both together
    are longer than the rendered range."""
    fades = (float(fade_in_s or 0.0), float(fade_out_s or 0.0))
    duration_seconds = float(duration_seconds)
    for name, value in zip(("--fade-in", "--fade-out"), fades, strict=True):
        if not math.isfinite(value) or value < 0:
            raise RenderError(f"{name} {value:g} must be 0 or more seconds")
    if sum(fades) > duration_seconds + 1e-9:
        raise RenderError(f"--fade-in {fades[0]:g} s + --fade-out {fades[1]:g} s is longer than the "
                          f"{duration_seconds:.2f} s being rendered; shorten the fades or render more.")
    return fades


def fade_envelope(n: int, rate: float, fade_in_s: float, fade_out_s: float, *,
                  index: np.ndarray | None = None) -> np.ndarray:
    """Gain per frame or sample, float32 (n,): a linear ramp from 0 (the first one) to 1 over
    ``fade_in_s`` and from 1 down to 0 (the last one) over ``fade_out_s``; 1 elsewhere. ``rate``:
    frames or samples per second. ``index``: only these positions (0..n-1) instead of all n."""
    idx = np.arange(n, dtype=np.float64) if index is None else np.asarray(index, dtype=np.float64)
    gain = np.ones(idx.shape, dtype=np.float64)
    if fade_in_s > 0:
        gain = np.minimum(gain, idx / (fade_in_s * rate))
    if fade_out_s > 0:
        gain = np.minimum(gain, (n - 1 - idx) / (fade_out_s * rate))
    return np.clip(gain, 0.0, 1.0).astype(np.float32)


def apply_fade(image: np.ndarray, gain: float) -> np.ndarray:
    """An RGB uint8 frame scaled towards black by ``gain`` (0..1); the frame itself when gain is 1."""
    if gain >= 1.0:
        return image
    return (image.astype(np.float32) * np.float32(gain) + np.float32(0.5)).astype(np.uint8)


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
    #: Fade from and to black (picture; the audio in ``audio`` is already faded), seconds.
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    #: Longest pre-roll a segment renders before its start when the engine hands its state over
    #: (bridge.export.preroll.segment_preroll); None: MAX_PREROLL_SECONDS. The frames do not depend
    #: on it (a segment that pre-rolled too little is rendered again from the exact state), only the
    #: work does: tests and benchmarks shorten it to make pre-rolls miss.
    max_segment_preroll_frames: int | None = None

    def frame_gain(self, frame: int) -> float:
        """How bright frame ``frame`` (absolute index) is after the fades: 0 = black, 1 = as rendered."""
        if not (self.fade_in_s or self.fade_out_s):
            return 1.0
        return float(fade_envelope(self.range.n_frames, float(self.range.fps), self.fade_in_s, self.fade_out_s,
                                   index=np.array([frame - self.range.start_frame]))[0])

    def without_audio(self) -> RenderJob:
        from dataclasses import replace

        return replace(self, audio=None)


def engine_preroll_frames(engine_key: str, engine_settings: dict, sections: Sequence[SectionLook], fps: Fraction) -> int:
    """Frames an engine renders (and drops) before a range that starts mid-song (``--start``), so
    it looks as a render from the song start would: PREROLL_SECONDS of frames (feedback trails,
    img2img chains); for shader looks without feedback (no pass with a TARGET) only the hit
    envelope's history (at 30 fps 9 frames instead of 60). It is also the segment pre-roll of
    engines that cannot hand their state over (lcm); the procedural and shader engines' segments
    pre-roll as long as their feedback needs at each cut
    (:func:`bridge.export.preroll.state_memory_frames`). A melt in progress adds its own
    (:func:`bridge.export.preroll.segment_preroll`)."""
    frames = int(PREROLL_SECONDS * fps)
    if engine_key == "shader":
        from bridge.visuals.shader import HIT_WINDOW_S, looks_keep_state

        if not looks_keep_state(engine_settings.get("look"), sections):
            frames = min(frames, math.ceil(HIT_WINDOW_S * float(fps)) + 1)
    return frames
