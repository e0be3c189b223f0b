"""The procedural engine: MilkDrop-style feedback visuals, real time on a CPU, no model.

Each frame (all at a working resolution, half the output size above 640×360, then upscaled once):

1. **feedback**: the previous frame is warped (zoom / rotation / translate, plus a liquid
   displacement field scaled by ``warp``) with one ``cv2.remap``, then decayed and colour-drifted
   with one ``cv2.transform`` (a 3×4 matrix: persistence × hue rotation × saturation, and a −1.5
   offset so dim trails fade to true black instead of sticking at the uint8 rounding floor);
2. **tunnel**: a kaleidoscopic log-polar pattern (precomputed uint8 phase map per section + a
   time shift, wrapping) coloured through the section's 256-entry striped palette with ``cv2.LUT``
   and added with a radial fog: rings stream out of the vanishing point;
3. **shapes**: a rotating star polygon whose size follows ``pulse``, k orbiting dots, and an
   oscilloscope ring wobbling with ``warp``/``detail``; the feedback zoom turns them into tunnels of
   echoes;
4. **sparkles**: ``detail`` scatters bright pixels (seeded per frame) that the zoom streaks outward;
5. **post**: vignette × brightness, white ``flash``, upscale.

Every section gets a look (palette scheme, hue, fold count, ring density, twist, trail drift…)
derived from a hash of its name, style, seed and the run seed; ``style`` keywords (warm, cool,
neon, mono, rainbow, forest, dark, calm, …) steer it. ``section_mix`` crossfades palettes, patterns
and shapes from the previous section's look. Deterministic: the only randomness is seeded by
(run seed, frame index).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from math import cos, pi, radians, sin, sqrt

import cv2
import numpy as np

from bridge.errors import RenderError
from bridge.mapping.params import PARAMETERS
from bridge.project.schema import EngineSettings
from bridge.visuals.base import RenderContext, SectionLook

#: Above this many output pixels the engine works at half resolution and upscales once.
HALF_RES_ABOVE_PIXELS = 640 * 360
BASE_SATURATION = 0.75
#: Periods of a shape's rotational symmetry one unit of ``travel`` turns it by (see _draw_shapes).
SYMMETRY_TURNS_PER_TRAVEL = 2

#: Share of a look's own flow (rings streaming, shapes spinning) that runs with time alone; the rest
#: of the movement comes from the `travel` parameter, i.e. from the music (benchmarks/av_sync.py).
AMBIENT_FLOW_SHARE = 0.1

_STYLE_HUES = {
    "warm": 0.03, "fire": 0.02, "sunset": 0.06, "red": 0.0, "orange": 0.07, "gold": 0.12,
    "yellow": 0.15, "forest": 0.33, "green": 0.33, "acid": 0.25, "cool": 0.58, "ice": 0.53,
    "ocean": 0.56, "blue": 0.62, "deep": 0.66, "purple": 0.76, "violet": 0.78, "pink": 0.9,
    "neon": 0.85, "cyber": 0.5,
}


@dataclass(frozen=True)
class Look:
    """The visual identity of a section (all derived from a seed; numbers are unitless)."""

    base_hue: float          # turns
    hue_spread: float        # turns covered by the palette
    n_bands: int             # bright stripes per palette cycle
    band_sharpness: float    # stripe width (higher = thinner lines)
    saturation: float        # multiplier on BASE_SATURATION + saturation param
    folds: int               # kaleidoscope symmetry of the tunnel and shapes
    ring_density: float      # rings per octave of radius
    twist: float             # spiral twist (phase turns per fold sector)
    petal: float             # how star-shaped the rings are (0 = circles)
    flow_turns_per_s: float  # tunnel flow speed (negative = outward)
    persistence: float       # feedback decay per frame before the decay param
    trail_hue_deg: float     # hue rotation of the trails per frame
    shape_sides: int
    shape_spin_deg_per_s: float
    mirror: int              # 0 none, 1 left-right, 2 quad
    pattern_gain: float      # how much tunnel is injected per frame


def _look_from_seed(section: SectionLook | None, run_seed: int) -> Look:
    key = "default" if section is None else f"{section.name}|{section.style}|{section.seed}"
    digest = hashlib.sha256(f"{run_seed}|{key}".encode()).digest()
    rng = np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))
    style = "" if section is None else section.style.lower()
    words = set("".join(c if c.isalnum() else " " for c in style).split())

    base_hue = float(rng.random())
    scheme = int(rng.integers(0, 4))  # analogous, complementary, triadic, wide
    spread = (0.12, 0.5, 0.33, 0.7)[scheme]
    trail_hue_deg = float(rng.uniform(-4.0, 4.0))
    for w, h in _STYLE_HUES.items():
        if w in words:
            # A colour word means that colour: a narrow scheme around it and little trail drift.
            base_hue = h + float(rng.normal(0, 0.015))
            spread = min(spread, 0.12)
            trail_hue_deg *= 0.25
            break
    saturation = 1.0
    pattern_gain = float(rng.uniform(0.45, 0.6))
    persistence = float(rng.uniform(0.90, 0.94))
    if words & {"rainbow", "psychedelic", "trippy"}:
        spread = 1.0
    if words & {"mono", "noir", "monochrome"}:
        spread, saturation = 0.03, 0.25
    if words & {"neon", "cyber"}:
        spread, saturation = 0.5, 1.3
    if words & {"dark", "noir", "calm", "ambient", "minimal"}:
        pattern_gain *= 0.6
    if words & {"calm", "ambient", "dreamy"}:
        persistence = 0.95
    # Negative flow = rings stream outward from the vanishing point (flying in); 1 in 5 looks inverts.
    flow = float(rng.uniform(0.15, 0.45)) * (-1 if rng.random() < 0.8 else 1)
    if words & {"calm", "ambient", "dreamy"}:
        flow *= 0.4
    return Look(
        base_hue=base_hue % 1.0,
        hue_spread=spread,
        n_bands=int(rng.integers(2, 5)),
        band_sharpness=float(rng.uniform(1.5, 4.0)),
        saturation=saturation,
        folds=int(rng.choice([3, 4, 5, 6, 8])),
        ring_density=float(rng.uniform(0.8, 2.2)),
        twist=float(rng.choice([0.0, 0.25, 0.5, 1.0])) * (1 if rng.random() < 0.5 else -1),
        petal=float(rng.uniform(0.0, 0.35)),
        flow_turns_per_s=flow,
        persistence=persistence,
        trail_hue_deg=trail_hue_deg,
        shape_sides=int(rng.choice([3, 4, 5, 6, 8])),
        shape_spin_deg_per_s=float(rng.uniform(-60, 60)),
        mirror=int(rng.choice([0, 0, 1, 2])),
        pattern_gain=pattern_gain,
    )


def hue_rotation_matrix(angle_deg: float) -> np.ndarray:
    """3×3 RGB matrix rotating hue by ``angle_deg`` around the grey axis (keeps greys grey)."""
    a = radians(angle_deg)
    c, s = cos(a), sin(a)
    k = (1.0 - c) / 3.0
    q = sqrt(1.0 / 3.0) * s
    return np.array([[c + k, k - q, k + q], [k + q, c + k, k - q], [k - q, k + q, c + k]], dtype=np.float32)


def saturation_matrix(amount: float) -> np.ndarray:
    """3×3 RGB matrix: 1 = unchanged, 0 = grey (Rec. 709 luma), >1 = more saturated."""
    luma = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return (amount * np.eye(3, dtype=np.float32) + (1.0 - amount) * np.tile(luma, (3, 1))).astype(np.float32)


#: Levels (uint8) the feedback step takes off every trail pixel each frame, after the decay: dim
#: trails fade to true black instead of sticking at the rounding floor.
TRAIL_OFFSET = 1.5
#: The trails' colour drift saturates by this much per frame (a saturated trail keeps its colour).
TRAIL_SATURATION = 1.04
#: Largest persistence per frame, whatever the look and the ``decay`` parameter.
MAX_PERSISTENCE = 0.985


def trail_matrix(prev: Look, cur: Look, mix: float, *, decay: float, strength: float) -> np.ndarray:
    """3×3 RGB matrix the feedback step applies to the trails (before :data:`TRAIL_OFFSET`): the
    persistence of the look (crossfaded during a transition) plus ``decay``, less 0.35 × ``strength``
    (a hit clears the trails faster), with the look's hue drift and the saturation gain."""
    persistence = (1 - mix) * prev.persistence + mix * cur.persistence
    persistence = float(np.clip(persistence + decay - 0.35 * strength, 0.0, MAX_PERSISTENCE))
    drift = (1 - mix) * prev.trail_hue_deg + mix * cur.trail_hue_deg
    return persistence * (hue_rotation_matrix(drift) @ saturation_matrix(TRAIL_SATURATION))


def trail_memory_frames(ctx: RenderContext, params: Mapping[str, np.ndarray], section_index: np.ndarray,
                        section_mix: np.ndarray, *, limit: int) -> int:
    """Frames after which the feedback buffer no longer depends on what it held before: how long a
    pre-roll from black must be to end in the state a render from the song start has (bit for bit),
    derived from the feedback's own per-frame parameters. ``params`` (``decay``, ``strength``),
    ``section_index`` and ``section_mix``: the frames before the cut, oldest first (the last one is
    the frame just before it); at most ``limit`` of them are looked at (``limit`` when that is not
    enough).

    The model: whatever the buffer held before the pre-roll, at most 255 in any channel, is scaled
    each frame by at most the trail matrix's largest row sum (persistence × hue drift × saturation
    gain, up to 0.985 × 1.07 on a saturated blue: then a trail can grow) and loses TRAIL_OFFSET
    levels; everything else a frame does (the warp's interpolation, max() with the pattern, the
    sparkles, the mirror) moves no pixel further from another history. Once that worst trail is
    below half a level it is 0 in both histories. It is a model, not a proof (the uint8 rounding of
    two lit trails can keep them a level apart): the export checks the state a pre-roll reached
    against the exact one and renders a segment again where it differs (bridge.export.cluster).
    Measured on 20 s of the demo at 320x180: pre-rolls from black reached the bit-exact state after
    36–67 frames (7 cuts); this model asks 20–305 frames (median 95, 39 cuts) and a pre-roll of
    that length reached it at every one of them (at 640x360 too); tests/test_preroll.py checks
    cuts of the synthetic project against the straight render."""
    n = min(int(limit), len(section_index))
    looks = [_look_from_seed(s, ctx.seed) for s in ctx.sections]
    default = _look_from_seed(None, ctx.seed)

    def look(i: int) -> Look:
        return looks[i] if 0 <= i < len(looks) else default

    decay = np.asarray(params["decay"], dtype=np.float64) if "decay" in params else None
    strength = np.asarray(params["strength"], dtype=np.float64) if "strength" in params else None
    colour_gain: dict[tuple[int, float], float] = {}  # the drift × saturation part, per look and mix
    worst = 0.5  # the largest trail, going back from the cut, that is gone (< half a level) by then
    for back in range(1, n + 1):
        k = len(section_index) - back
        idx, mix = int(section_index[k]), float(np.clip(section_mix[k], 0.0, 1.0))
        cur = look(idx)
        prev = look(idx - 1) if idx > 0 and mix < 1.0 else cur
        d = _clipped("decay", None if decay is None else decay[k])
        st = _clipped("strength", None if strength is None else strength[k])
        if (idx, mix) not in colour_gain:  # trail_matrix at persistence 1 (it scales the matrix)
            m = trail_matrix(prev, cur, mix, decay=MAX_PERSISTENCE - (1 - mix) * prev.persistence
                             - mix * cur.persistence, strength=0.0) / MAX_PERSISTENCE
            colour_gain[idx, mix] = float(np.abs(m).sum(axis=1).max())
        persistence = min(MAX_PERSISTENCE, max(0.0, (1 - mix) * prev.persistence + mix * cur.persistence
                                               + d - 0.35 * st))
        gain = persistence * colour_gain[idx, mix]
        worst = (worst + TRAIL_OFFSET) / gain if gain > 0 else float("inf")
        if worst >= 255.0:
            return back
    return n


def _clipped(name: str, value: float | None) -> float:
    """A parameter as the render uses it: within its range, its neutral value when missing or not finite."""
    spec = PARAMETERS[name]
    v = spec.neutral if value is None else float(value)
    return min(spec.maximum, max(spec.minimum, v)) if np.isfinite(v) else spec.neutral


#: Share of white a full flash mixes in: a frame x becomes x·(1 − f) + 255·f with f = this × flash
#: (both the procedural and the LCM engine; the preview undoes and redoes it between keyframes).
FLASH_WHITE_SHARE = 0.85


def flash_affine(flash: float) -> tuple[float, float]:
    """(alpha, beta) of the white flash on uint8 levels: ``y = alpha·x + beta`` for ``flash`` 0..1."""
    f = FLASH_WHITE_SHARE * float(flash)
    return 1.0 - f, 255.0 * f


def brightness_gain(brightness: float) -> float:
    """The gain ``brightness`` (−1..1, 0 = unchanged) applies to the finished frame (0..2)."""
    return float(np.clip(1.0 + brightness, 0.0, 2.0))


def post_colour_matrix(*, hue: float, saturation: float, brightness: float) -> np.ndarray:
    """3×3 RGB matrix of the colour grade a frame's ``hue`` (turns), ``saturation`` and
    ``brightness`` apply to a finished picture (the LCM engine's post; the procedural engine applies
    hue and saturation to its palette before drawing, which this matches on greys and primaries
    up to the palette's own curve, and brightness as this gain)."""
    return brightness_gain(brightness) * (hue_rotation_matrix(hue * 360.0).astype(np.float64)
                                          @ saturation_matrix(1.0 + saturation).astype(np.float64))


def display_affine(*, hue: float, saturation: float, brightness: float, flash: float) -> np.ndarray:
    """3×4 affine colour map (uint8 levels) a parameter row's colour grade then white flash apply
    to a picture: ``y = M[:, :3] @ x + M[:, 3]``."""
    alpha, beta = flash_affine(flash)
    m = np.empty((3, 4))
    m[:, :3] = alpha * post_colour_matrix(hue=hue, saturation=saturation, brightness=brightness)
    m[:, 3] = beta
    return m


def feedback_matrix(*, width: int, height: int, zoom: float, rotation_deg: float,
                    translate_x: float, translate_y: float) -> np.ndarray:
    """2×3 forward affine matrix of the feedback step: scale by (1 + zoom) and rotate about the
    centre (positive = counter-clockwise on screen), then shift by a fraction of the size."""
    scale = max(1e-3, 1.0 + zoom)
    m = cv2.getRotationMatrix2D((width / 2.0 - 0.5, height / 2.0 - 0.5), rotation_deg, scale)
    m[0, 2] += translate_x * width
    m[1, 2] += translate_y * height
    return m


def warp_feedback(image: np.ndarray, *, zoom: float = 0.0, rotation_deg: float = 0.0,
                  translate_x: float = 0.0, translate_y: float = 0.0,
                  displacement: np.ndarray | None = None,
                  grid: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Apply the feedback transform to an image (H, W, C): content at distance d from the centre
    moves to d·(1 + zoom), rotated counter-clockwise by ``rotation_deg`` and shifted.

    displacement: optional float32 (H, W, 2) pixels added to the sampling positions (liquid warp).
    grid: optional precomputed (x, y) float32 pixel-coordinate maps (H, W), to save their cost.
    Borders reflect (zooming out mirrors the frame into itself).
    """
    h, w = image.shape[:2]
    m = feedback_matrix(width=w, height=h, zoom=zoom, rotation_deg=rotation_deg,
                        translate_x=translate_x, translate_y=translate_y)
    if displacement is None:
        # Pure affine: warpAffine samples the same positions (1/32 px fixed point, as below) about
        # 3× faster than building maps and remapping — it matters on the LCM engine's GPU budget.
        return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    inv = cv2.invertAffineTransform(m)
    if grid is None:
        grid = (np.arange(w, dtype=np.float32)[None, :].repeat(h, 0),
                np.arange(h, dtype=np.float32)[:, None].repeat(w, 1))
    gx, gy = grid
    # The sampling maps with cv2 arithmetic (≈20× faster than numpy broadcasting here), then
    # fixed-point maps (1/32 px), which remap twice as fast as float maps.
    map_x = cv2.addWeighted(gx, float(inv[0, 0]), gy, float(inv[0, 1]), float(inv[0, 2]))
    map_y = cv2.addWeighted(gx, float(inv[1, 0]), gy, float(inv[1, 1]), float(inv[1, 2]))
    if displacement is not None:
        map_x = cv2.add(map_x, displacement[..., 0])
        map_y = cv2.add(map_y, displacement[..., 1])
    fixed_xy, fixed_frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return cv2.remap(image, fixed_xy, fixed_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (turns, 0..1, 0..1) → RGB float32 0..1, shape (n, 3)."""
    hsv = np.stack([np.mod(h, 1.0) * 360.0, np.clip(s, 0, 1), np.clip(v, 0, 1)], axis=-1).astype(np.float32)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


class _Geometry:
    """Per-resolution precomputed maps: polar coordinates, fog, vignette, sampling grid."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.cx, self.cy = width / 2.0 - 0.5, height / 2.0 - 0.5
        self.unit = min(width, height) / 2.0
        x = (np.arange(width, dtype=np.float32) - self.cx) / self.unit
        y = (np.arange(height, dtype=np.float32) - self.cy) / self.unit
        self.x, self.y = np.meshgrid(x, y)
        self.r = np.sqrt(self.x**2 + self.y**2) + 1e-3
        self.theta = np.arctan2(self.y, self.x)
        r_norm = self.r / float(self.r.max())
        fog = np.clip((self.r - 0.04) / 0.5, 0, 1) ** 1.5 * (1.0 - 0.35 * r_norm**2)
        self.fog = cv2.merge([(fog * 255).astype(np.uint8)] * 3)
        vignette = 1.0 - 0.55 * r_norm**2.5
        self.vignette = cv2.merge([(vignette * 255).astype(np.uint8)] * 3)
        # Low-resolution grid for the liquid displacement (smooth, so it is computed at 1/8 size
        # and upscaled with one resize instead of evaluating sines on every pixel).
        self.lw, self.lh = max(2, width // 8), max(2, height // 8)
        lx = (np.arange(self.lw, dtype=np.float32) + 0.5) / self.lw * width - 0.5 - self.cx
        ly = (np.arange(self.lh, dtype=np.float32) + 0.5) / self.lh * height - 0.5 - self.cy
        self.lx, self.ly = np.meshgrid(lx / self.unit, ly / self.unit)
        self.lr = np.sqrt(self.lx**2 + self.ly**2) + 1e-3
        self.grid_x = np.arange(width, dtype=np.float32)[None, :].repeat(height, 0)
        self.grid_y = np.arange(height, dtype=np.float32)[:, None].repeat(width, 1)
        self._phase_maps: dict[Look, np.ndarray] = {}

    def phase_map(self, look: Look) -> np.ndarray:
        """uint8 tunnel phase (256 = one turn of the palette) for a look, cached."""
        cached = self._phase_maps.get(look)
        if cached is not None:
            return cached
        sector = 2.0 * pi / look.folds
        folded = np.abs(np.mod(self.theta, sector) / sector - 0.5)  # 0..0.5, mirror-symmetric wedge
        r = self.r * (1.0 + look.petal * np.cos(look.folds * self.theta))
        phase = look.ring_density * np.log2(r) + look.twist * folded * 2.0
        out = np.mod(np.round(phase * 256.0), 256).astype(np.uint8)
        self._phase_maps[look] = out
        return out


class ProceduralEngine:
    """MilkDrop-style feedback engine (see the module docstring). Settings:

    working_scale: fraction of the output size the feedback runs at (None: 0.5 above 640×360,
        else 1.0). 1.0 is sharper and ≈4× slower.
    """

    name = "procedural"

    def __init__(self, *, working_scale: float | None = None, **engine_settings: object) -> None:
        # The project's engine settings (model, steps, guidance…) are shared by all engines and
        # mean nothing here: they are accepted and ignored; anything else is a mistake.
        unknown = set(engine_settings) - set(EngineSettings.model_fields)
        if unknown:
            raise RenderError(
                f"procedural engine settings {sorted(unknown)} are unknown; it takes working_scale "
                f"(and ignores the shared engine settings {', '.join(EngineSettings.model_fields)})"
            )
        if working_scale is not None and not (0.1 <= working_scale <= 1.0):
            raise RenderError(f"working_scale {working_scale} must be between 0.1 and 1.0 (1.0 = full resolution)")
        self.working_scale = working_scale
        self._ctx: RenderContext | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, ctx: RenderContext) -> None:
        if ctx.width < 16 or ctx.height < 16:
            raise RenderError(f"frame size {ctx.width}×{ctx.height} is too small; use at least 16×16")
        self._ctx = ctx
        scale = self.working_scale
        if scale is None:
            scale = 0.5 if ctx.width * ctx.height > HALF_RES_ABOVE_PIXELS else 1.0
        self._ww = max(16, int(round(ctx.width * scale / 2)) * 2)
        self._wh = max(16, int(round(ctx.height * scale / 2)) * 2)
        self._geo = _Geometry(self._ww, self._wh)
        self._buf = np.zeros((self._wh, self._ww, 3), dtype=np.uint8)
        self._default_look = _look_from_seed(None, ctx.seed)
        self._looks = [_look_from_seed(s, ctx.seed) for s in ctx.sections]
        for look in (self._default_look, *self._looks):
            self._geo.phase_map(look)  # precompute now: no hitch on a section's first frame

    def reset(self) -> None:
        """Clear the feedback (the only frame-to-frame state) without redoing ``start``'s setup."""
        if self._buf is not None:
            self._buf[...] = 0

    def get_state(self) -> dict[str, np.ndarray]:
        """A copy of everything that carries from one frame to the next: the feedback buffer
        (uint8 (working height, working width, 3)). With :meth:`set_state`, a run of frames can
        start exactly where another engine's run stopped (segment exports, resume)."""
        if self._buf is None:
            raise RenderError("ProceduralEngine.get_state was called before start(ctx); call start first")
        return {"feedback": self._buf.copy()}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from a state :meth:`get_state` returned (an engine started with the same context)."""
        if self._buf is None:
            raise RenderError("ProceduralEngine.set_state was called before start(ctx); call start first")
        buf = np.asarray(state.get("feedback")) if "feedback" in state else None
        if buf is None or buf.shape != self._buf.shape or buf.dtype != np.uint8:
            got = "nothing" if buf is None else f"{buf.dtype} {buf.shape}"
            raise RenderError(f"procedural engine state has feedback {got}; this engine needs uint8 "
                              f"{self._buf.shape} (a state saved by a render of another size or engine)")
        self._buf = np.array(buf, dtype=np.uint8, order="C")

    def close(self) -> None:
        self._buf = None  # type: ignore[assignment]
        self._geo = None  # type: ignore[assignment]

    # -- helpers -----------------------------------------------------------------------------
    def _look(self, section_index: int) -> Look:
        if 0 <= section_index < len(self._looks):
            return self._looks[section_index]
        return self._default_look

    def _palette(self, look: Look, *, hue: float, saturation: float) -> np.ndarray:
        """(256, 3) float32 0..1: n_bands bright stripes per cycle, hue sweeping the look's scheme."""
        u = np.arange(256, dtype=np.float32) / 256.0
        band = u * look.n_bands
        frac = band - np.floor(band)
        value = np.sin(np.pi * frac) ** look.band_sharpness
        h = look.base_hue + hue + look.hue_spread * (np.floor(band) / look.n_bands + 0.5 * frac / look.n_bands)
        s = np.clip((BASE_SATURATION + saturation + 0.15) * look.saturation, 0, 1) * (1.0 - 0.25 * value**6)
        return _hsv_to_rgb(h, s, value)

    def _tunnel(self, look: Look, palette: np.ndarray, shift: float, gain: float) -> np.ndarray:
        phase = self._geo.phase_map(look)
        idx = np.add(phase, np.uint8(int(shift * 256) % 256), dtype=np.uint8)  # wraps, as intended
        lut = np.clip(palette * 255.0, 0, 255).astype(np.uint8).reshape(256, 1, 3)
        coloured = cv2.applyColorMap(idx, lut)  # = LUT of a grey→RGB copy, in one pass (2× faster)
        return cv2.multiply(coloured, self._geo.fog, scale=gain / 255.0)

    def _draw_shapes(self, img: np.ndarray, look: Look, *, t: float, pulse: float, detail: float,
                     warp: float, hue: float, sat: float, weight: float, travel: float = 0.0) -> None:
        g = self._geo
        unit = g.unit
        shift = 16  # fixed-point bits for sub-pixel anti-aliased drawing
        f = float(1 << shift)

        hues = look.base_hue + hue + look.hue_spread * np.array([0.15, 0.5, 0.85])
        rgb = _hsv_to_rgb(hues, np.full(3, min(1.0, max(0.0, (BASE_SATURATION + sat + 0.15) * look.saturation))),
                          np.ones(3))

        def colour(i: int, boost: float = 1.0) -> tuple[float, float, float]:
            return tuple(float(v) for v in np.clip(rgb[i] * 255.0 * weight * boost, 0, 255))

        # Star polygon: size and thickness follow the pulse.
        # Spin: a slow ambient turn plus a step with every unit of travel (hits turn the star). An
        # n-pointed star looks the same every 360/n degrees, so a hit that turned it by 360 × step
        # (as this did) vanished when the step was near 1/n: a strong hit showed less motion than a
        # ghost note. SYMMETRY_TURNS_PER_TRAVEL periods of its symmetry per unit of travel keep the
        # visible change growing with the step up to a quarter unit, and seamless where travel wraps.
        n = look.shape_sides
        direction = 1 if look.shape_spin_deg_per_s >= 0 else -1
        spin = radians(look.shape_spin_deg_per_s * AMBIENT_FLOW_SHARE * t
                       + direction * SYMMETRY_TURNS_PER_TRAVEL * 360.0 / n * travel)
        radius = unit * (0.10 + 0.55 * pulse)
        angles = spin + np.arange(2 * n) * pi / n
        radii = np.where(np.arange(2 * n) % 2 == 0, radius, radius * (0.55 + 0.25 * sin(t * 1.3)))
        pts = np.stack([g.cx + radii * np.cos(angles), g.cy + radii * np.sin(angles)], axis=1)
        thickness = max(1, int(round(unit * (0.008 + 0.02 * pulse))))
        cv2.polylines(img, [np.round(pts * f).astype(np.int32)], True, colour(0, 0.6 + 0.6 * pulse),
                      thickness, cv2.LINE_AA, shift)

        # Orbiters: `folds` dots circling, leaving spiral trails under zoom + rotation.
        k = look.folds
        orbit = unit * (0.35 + 0.25 * pulse + 0.1 * sin(t * 0.7))
        dot = max(1.0, unit * (0.012 + 0.03 * pulse))
        orbit_spin = radians(-1.5 * look.shape_spin_deg_per_s * AMBIENT_FLOW_SHARE * t
                             - direction * SYMMETRY_TURNS_PER_TRAVEL * 360.0 / k * travel)
        for i in range(k):
            a = orbit_spin + 2 * pi * i / k
            center = (int((g.cx + orbit * cos(a)) * f), int((g.cy + orbit * sin(a)) * f))
            cv2.circle(img, center, int(dot * f), colour(1 + (i % 2), 0.9), -1, cv2.LINE_AA, shift)

        # Oscilloscope ring: wobbles with warp (slow lobes) and detail (fast ripples).
        th = np.linspace(0, 2 * pi, 181)
        rr = unit * (0.62 + 0.08 * sin(t * 0.5)) * (
            1.0 + (0.06 + 0.2 * warp) * np.sin(k * th + t * 2.1) + 0.08 * detail * np.sin(23 * th - t * 9.0)
        )
        ring = np.stack([g.cx + rr * np.cos(th + spin * 0.3), g.cy + rr * np.sin(th + spin * 0.3)], axis=1)
        cv2.polylines(img, [np.round(ring * f).astype(np.int32)], True, colour(2, 0.45 + 0.5 * detail),
                      max(1, int(unit * 0.006)), cv2.LINE_AA, shift)

    def _displacement(self, look: Look, *, t: float, warp: float) -> np.ndarray:
        """Liquid warp (pixels, (H, W, 2)): a radial ripple plus a swirl, evaluated at 1/8 size and
        upscaled with one resize instead of evaluating sines on every pixel (the field is smooth)."""
        g = self._geo
        amp = warp * g.unit * 0.035
        ripple = np.sin(9.0 * g.lr - t * 3.1) + 0.5 * np.sin(5.0 * g.lx + t * 1.7) * np.cos(4.0 * g.ly - t * 1.3)
        swirl = np.sin(look.folds * np.arctan2(g.ly, g.lx) + t * 0.9) * 0.6
        d = np.empty(g.lx.shape + (2,), dtype=np.float32)
        d[..., 0] = amp * (ripple * g.lx / g.lr - swirl * g.ly)
        d[..., 1] = amp * (ripple * g.ly / g.lr + swirl * g.lx)
        return cv2.resize(d, (g.width, g.height), interpolation=cv2.INTER_LINEAR)

    # -- the frame ---------------------------------------------------------------------------
    def render(self, frame_index: int, params: Mapping[str, float], section_index: int,
               section_mix: float) -> np.ndarray:
        ctx = self._ctx
        if ctx is None or self._buf is None:
            raise RenderError("ProceduralEngine.render was called before start(ctx); call start first")

        def p(name: str) -> float:
            v = float(params.get(name, PARAMETERS[name].neutral))
            spec = PARAMETERS[name]
            return min(spec.maximum, max(spec.minimum, v)) if np.isfinite(v) else spec.neutral

        t = frame_index * float(ctx.fps.denominator) / float(ctx.fps.numerator)
        mix = float(np.clip(section_mix, 0.0, 1.0))
        cur = self._look(section_index)
        prev = self._look(section_index - 1) if section_index > 0 else cur
        nxt = self._look(section_index + 1) if 0 <= section_index + 1 < len(self._looks) else cur
        if mix >= 1.0:
            prev = cur

        pulse, detail, warp = p("pulse"), p("detail"), p("warp")
        travel = float(params.get("travel", 0.0)) % 1.0 if np.isfinite(params.get("travel", 0.0)) else 0.0
        flash, strength = p("flash"), p("strength")
        hue, sat = p("hue"), p("saturation")
        prompt_mix = p("prompt_mix")

        # 1. feedback: warp, decay, colour drift.
        buf = self._buf
        disp = self._displacement(cur, t=t, warp=warp) if warp > 1e-3 else None
        buf = warp_feedback(buf, zoom=p("zoom"), rotation_deg=p("rotation"), translate_x=p("translate_x"),
                            translate_y=p("translate_y"), displacement=disp,
                            grid=(self._geo.grid_x, self._geo.grid_y))
        m = trail_matrix(prev, cur, mix, decay=p("decay"), strength=strength)
        m34 = np.hstack([m, np.full((3, 1), -TRAIL_OFFSET, dtype=np.float32)]).astype(np.float32)
        buf = cv2.transform(buf, m34)

        # 2. tunnel pattern (crossfaded between looks during a transition).
        def palette_of(look: Look) -> np.ndarray:
            pal = self._palette(look, hue=hue, saturation=sat)
            if prompt_mix > 0 and nxt is not cur and look is cur:
                pal = (1 - prompt_mix) * pal + prompt_mix * self._palette(nxt, hue=hue, saturation=sat)
            return pal

        pal_cur = palette_of(cur)
        # ``strength`` (re-seeding) only clears the trails faster (above): brightening the pattern
        # with it would have to go back after every hit, a second change one frame late.
        gain_boost = 0.55 * pulse + 0.5 * flash
        for look, weight, pal in ((cur, mix, pal_cur), (prev, 1.0 - mix, None)):
            if weight <= 1e-3:
                continue
            pal = pal if pal is not None else palette_of(look)
            # The rings move where the music drives them: ``travel`` (a position the hits step
            # forward, see bridge.mapping.params) plus a slow ambient drift, so the picture jumps on
            # a hit and is nearly still between hits.
            direction = 1.0 if look.flow_turns_per_s >= 0 else -1.0
            shift = AMBIENT_FLOW_SHARE * look.flow_turns_per_s * t + direction * travel + 0.15 * pulse
            gain = weight * look.pattern_gain * (1.0 + gain_boost)
            buf = cv2.max(buf, self._tunnel(look, pal, shift, gain))
            self._draw_shapes(buf, look, t=t, pulse=pulse, detail=detail, warp=warp, hue=hue, sat=sat,
                              weight=weight, travel=travel)

        # 3. sparkles: bright pixels scattered by `detail`; the zoom streaks them into stars.
        n_sparks = int(detail * 0.0012 * self._ww * self._wh)
        if n_sparks:
            rng = np.random.default_rng((ctx.seed, frame_index))
            ys = rng.integers(0, self._wh - 1, n_sparks)
            xs = rng.integers(0, self._ww - 1, n_sparks)
            tint = (np.clip(pal_cur[rng.integers(0, 256, n_sparks)] * 0.4 + 0.7, 0, 1) * 255).astype(np.uint8)
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # 2×2 dots: visible after the upscale
                buf[ys + dy, xs + dx] = np.maximum(buf[ys + dy, xs + dx], tint)

        # 4. kaleidoscope mirror of the feedback (part of the look; switches half-way in a transition).
        mirror = cur.mirror if mix >= 0.5 else prev.mirror
        if mirror:
            # A true mirror (copy a half over the other) rather than max(): no brightening.
            half = self._ww // 2
            buf[:, half:] = buf[:, half - 1::-1][:, : self._ww - half]
            if mirror == 2:
                hh = self._wh // 2
                buf[hh:] = buf[hh - 1::-1][: self._wh - hh]
        self._buf = buf

        # 5. post: vignette × brightness, flash, upscale.
        out = cv2.multiply(buf, self._geo.vignette, scale=brightness_gain(p("brightness")) / 255.0)
        if flash > 0:
            alpha, beta = flash_affine(flash)
            out = cv2.convertScaleAbs(out, alpha=alpha, beta=beta)
        if (self._ww, self._wh) != (ctx.width, ctx.height):
            out = cv2.resize(out, (ctx.width, ctx.height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(out)
