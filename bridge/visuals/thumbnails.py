"""Thumbnails of the shader engine's looks: a small picture of each look as music drives it.

A look is rendered headless (:mod:`bridge.visuals.shader`) through a few beats of a synthetic
song at 120 BPM — a hit on every beat (flash and pulse that decay, a travel step, a little
warp and detail) over a steady bass tone with a click on the beat (for looks with ``audio`` /
``audioFFT`` inputs) — and the thumbnail is the frame a moment after the last hit, so feedback
looks have had time to build their trails.

Thumbnails are cached as PNG in the user cache folder (``platformdirs.user_cache_dir`` /
``thumbnails``), named by the SHA-256 of the .fs file's content, the size and the recipe's
version: an unchanged look is never rendered twice, an edited one is rendered again.
"""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from bridge.errors import RenderError

THUMBNAIL_SIZE = (192, 108)
#: Bumped whenever the recipe below changes, so cached thumbnails of the old recipe are not reused.
RECIPE_VERSION = 1
_FPS = 20
_TEMPO_BPM = 120.0
_BEATS = 5  # hits at 0.0, 0.5 … 2.0 s
_SHOT_AFTER_HIT_S = 0.1  # the thumbnail: this long after the last hit
_SAMPLE_RATE = 22050


def thumbnail_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("stembridge", appauthor=False)) / "thumbnails"


def look_hash(path: str | Path) -> str:
    """SHA-256 (hex) of the look's .fs file content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def thumbnail_path(path: str | Path, size: tuple[int, int] = THUMBNAIL_SIZE,
                   cache_dir: str | Path | None = None) -> Path:
    """Where the thumbnail of the .fs file ``path`` (as it is now) is cached."""
    folder = Path(cache_dir) if cache_dir is not None else thumbnail_cache_dir()
    return folder / f"{look_hash(path)[:32]}-{size[0]}x{size[1]}-r{RECIPE_VERSION}.png"


def _synthetic_song() -> tuple[np.ndarray, np.ndarray]:
    """(beat times in seconds, a mono mix) for the recipe: a 55 Hz tone plus a click per beat."""
    period = 60.0 / _TEMPO_BPM
    beats = np.arange(_BEATS + 8) * period  # the grid runs past the shot (beat phases stay defined)
    n = int((beats[-1] + 1.0) * _SAMPLE_RATE)
    t = np.arange(n) / _SAMPLE_RATE
    mix = 0.3 * np.sin(2 * np.pi * 55.0 * t) + 0.1 * np.sin(2 * np.pi * 440.0 * t)
    noise = np.random.default_rng(7).standard_normal(int(0.05 * _SAMPLE_RATE))
    env = np.exp(-np.arange(noise.size) / (0.01 * _SAMPLE_RATE))
    for b in beats[:_BEATS]:
        i = int(b * _SAMPLE_RATE)
        mix[i:i + noise.size] += 0.6 * noise * env
    return beats, np.clip(mix, -1.0, 1.0).astype(np.float32)


def _params(t: float, beats: np.ndarray) -> dict[str, float]:
    """Representative visual parameters at song time ``t``: each hit flashes, pulses and steps travel."""
    hits = beats[:_BEATS]
    past = hits[hits <= t + 1e-9]
    since = t - float(past[-1]) if past.size else math.inf
    kick = math.exp(-since / 0.12) if math.isfinite(since) else 0.0
    return {
        "flash": 0.35 * kick,
        "pulse": 0.4 + 0.5 * kick,
        "travel": 0.07 * past.size,
        "warp": 0.25,
        "detail": 0.5,
        "zoom": 0.01 * kick,
        "hue": 0.0,
    }


def render_thumbnail(look: str | Path, size: tuple[int, int] = THUMBNAIL_SIZE) -> np.ndarray:
    """The look (a name or an .fs path) rendered by the recipe: RGB uint8, shape (height, width, 3).
    Raises RenderError (with the compiler's message for a broken shader, or the fix when there is no
    OpenGL)."""
    from bridge.visuals import RenderContext, SectionLook, get_engine

    beats, mix = _synthetic_song()
    shot_s = float(beats[_BEATS - 1]) + _SHOT_AFTER_HIT_S
    last = int(round(shot_s * _FPS))
    ctx = RenderContext(size[0], size[1], Fraction(_FPS), (SectionLook(0.0, 60.0, "thumbnail"),),
                        beats_s=tuple(float(b) for b in beats), downbeats_s=tuple(float(b) for b in beats[::4]),
                        audio={"mix": mix}, audio_sample_rate=_SAMPLE_RATE)
    engine = get_engine("shader", look=str(look))
    engine.start(ctx)
    try:
        frame = None
        for i in range(last + 1):
            frame = engine.render(i, _params(i / _FPS, beats), 0, 1.0)
    finally:
        engine.close()
    assert frame is not None
    return frame


def thumbnail(look: str | Path, *, size: tuple[int, int] = THUMBNAIL_SIZE,
              cache_dir: str | Path | None = None) -> Path:
    """The cached thumbnail PNG of a look (a name or an .fs path), rendered when the cache has none
    for the file's current content."""
    import cv2

    from bridge.fsutil import atomic_write_bytes
    from bridge.visuals.shader_looks import resolve_look

    path = resolve_look(str(look))
    out = thumbnail_path(path, size, cache_dir)
    if out.is_file():
        return out
    frame = render_thumbnail(path, size)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
    if not ok:
        raise RenderError(f"the thumbnail of {path} could not be encoded as PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, png.tobytes())
    return out


def read_thumbnail(path: str | Path) -> np.ndarray:
    """A thumbnail PNG → RGB uint8."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RenderError(f"{path}: not a readable PNG")
    return np.ascontiguousarray(img[:, :, ::-1])
