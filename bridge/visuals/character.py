"""Every song its own look: a song's musical character → the run seed and the default shader look.

With all defaults, two songs used to render the same picture in different colours: looks were
seeded by the section's name and seed and the project's run seed (0), which every new project
shares. Now, unless the producer sets ``engine.seed`` or ``engine.look``, both come from the music:

- **seed** (procedural looks: palette scheme, fold count, ring density, trails…): a hash of the
  song's tempo, meter and length, so different songs differ, the same song always looks the same
  (preview, export and a re-render agree), and re-bouncing one stem does not change it;
- **shader look**: fast and bright music gets the starfield or the grid, mid-tempo the tunnel or
  the kaleidoscope, slow songs the ink or the minimal look (the choice between the two by
  brightness); the key sets the palette's hue (around the circle of fifths).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from bridge.analysis.types import SongAnalysis

#: Krumhansl–Kessler key profiles (major, minor), C first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class SongCharacter:
    tempo_bpm: float
    key: int          # pitch class, C = 0
    minor: bool
    brightness_hz: float  # loudness-weighted mean spectral centroid
    energy: float     # mean RMS of the mix of stems (linear)

    @property
    def hue(self) -> float:
        """The key around the circle of fifths as a hue in turns (minor keys a little darker/cooler)."""
        fifths = (self.key * 7) % 12
        return (fifths / 12.0 + (0.55 if self.minor else 0.0)) % 1.0


def song_character(analysis: SongAnalysis) -> SongCharacter:
    chroma = np.zeros(12)
    centroid_num = centroid_den = 0.0
    energy = 0.0
    for stem in analysis.stems.values():
        rms = np.asarray(stem.curves["rms"], dtype=np.float64)
        energy += float(np.mean(rms))
        if stem.role != "drums":
            c = np.asarray(stem.curves["chroma"], dtype=np.float64)
            n = min(c.shape[1], rms.size)
            chroma += c[:, :n] @ rms[:n]
        cent = np.asarray(stem.curves["centroid"], dtype=np.float64)
        n = min(cent.size, rms.size)
        centroid_num += float(cent[:n] @ rms[:n])
        centroid_den += float(np.sum(rms[:n]))
    key, minor = 0, False
    if chroma.sum() > 0:
        z = (chroma - chroma.mean()) / (chroma.std() + 1e-12)
        scores = []
        for profile, is_minor in ((_MAJOR, False), (_MINOR, True)):
            p = (profile - profile.mean()) / profile.std()
            scores += [(float(np.dot(np.roll(p, k), z)), k, is_minor) for k in range(12)]
        _, key, minor = max(scores)
    return SongCharacter(
        tempo_bpm=float(analysis.beat_grid.tempo_bpm), key=int(key), minor=bool(minor),
        brightness_hz=centroid_num / centroid_den if centroid_den > 0 else 0.0, energy=energy,
    )


def song_seed(analysis: SongAnalysis) -> int:
    """A run seed that is the same for a song every time and different between songs.

    Only from what an edit of one part rarely changes — tempo, meter and the song's length (to
    10 s) — so re-bouncing a stem or nudging a mix does not swap the whole video's look."""
    grid = analysis.beat_grid
    text = f"{round(grid.tempo_bpm)}|{grid.meter_label}|{round(analysis.duration_seconds / 10.0)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % (2**31)


def default_look(analysis: SongAnalysis, character: SongCharacter | None = None) -> str:
    """The shader look for a song whose producer chose none (see the module docstring)."""
    ch = character or song_character(analysis)
    bright = ch.brightness_hz >= 2500.0
    if ch.tempo_bpm >= 135:
        return "starfield" if bright else "grid"
    if ch.tempo_bpm >= 95:
        return "tunnel" if bright or not ch.minor else "kaleidoscope"
    return "ink" if ch.energy > 0.05 else "minimal"


def effective_engine(engine_settings, analysis: SongAnalysis) -> tuple[int, dict]:
    """(run seed, extra engine settings) for a project's engine block: the producer's seed and look
    when set (a seed of 0 means "from the song"), else the song's own."""
    seed = int(engine_settings.seed) or song_seed(analysis)
    extra: dict = {}
    if engine_settings.name == "shader":
        character = song_character(analysis)  # once: it reads every stem's chroma and centroid
        if not engine_settings.look:
            extra["look"] = default_look(analysis, character)
        extra["base_hue"] = round(character.hue, 4)
    return seed, extra


def with_song_settings(settings: dict, song_settings: dict) -> dict:
    """``settings`` (an engine block as keyword arguments) with the song's own values filled in
    wherever the producer chose nothing. A saved project holds every field (``look: null``,
    ``images: {}``), so "not chosen" means empty, not absent."""
    out = dict(settings)
    for key, value in song_settings.items():
        if out.get(key) in (None, {}, ()):
            out[key] = value
    return out
