"""Every song its own look: a song's musical character → the run seed and the default shader look.

With all defaults, two songs used to render the same picture in different colours: looks were
seeded by the section's name and seed and the project's run seed (0), which every new project
shares. Now, unless the producer sets ``engine.seed`` or ``engine.look``, both come from the music:

- **seed** (procedural looks: palette scheme, fold count, ring density, trails…): a hash of the
  song's tempo, meter and length, so different songs differ, the same song always looks the same
  (preview, export and a re-render agree), and re-bouncing one stem does not change it;
- **shader look**: fast music gets the glitch look (minor key), the starfield (bright) or the grid,
  mid-tempo the tunnel (bright or major) or the kaleidoscope, slow songs the ink (loud) or the
  minimal look (quiet); the key sets the palette's hue (around the circle of fifths).

**Speed class from what is heard, not only from the grid's octave** (:func:`perceived_bpm`). The beat
tracker sometimes takes a fast song (160-190 BPM) at half tempo or a slow one at double, and the
song then got the look of the wrong speed. The grid tempo stays the main input, checked against the
event rates of drums and bass (onsets per second, which do not depend on the octave the grid took): a
"slow" grid on which drums and bass play more than DOUBLE_EVENTS_PER_BEAT events per beat on average
is heard as twice as fast (a 180 BPM song read at 90: 3.2-3.4; Freedoom E2M8), a "fast" grid on
which the drums leave beats empty (fewer than HALVE_EVENTS_PER_BEAT hits per beat: an 80 BPM song
read at 160, 0.5-0.6; Freedoom E1M3) is heard as half as fast. A drum hit on every beat is not
sparse (a kick-only 150 BPM song stays fast), so an 85 BPM song read at 170 with about one hit per
grid beat keeps the fast class (Freedoom E1M8). Songs without drums keep the grid tempo (a piano's
note rate says little about its beat). Measured on the dev songs (the shared dev songs + the 70
Freedoom 1 excerpts, 77 items): speed class equal to the notated tempo's class 59 (grid alone) →
63 (9 gained: E3M7 and E2M8 at half tempo, E1M3 and E1M5 at double; 5 lost, below). Notation is
itself a convention: a half-time-feel song notated 160 (Freedoom E2M7, 1.4 drum hits per beat at
80) stays "slow", as it sounds; E2M9, notated 80 with 6 drum hits per beat (sixteenths), and E1M9,
notated 90 with 3 drum and 3.7 bass events per beat, are now "fast" — busy songs by ear. OpenMSX
(held, run once, 84 excerpts): 50 → 61, none lost; its other misses are 2:3 grids and fast songs
read into the mid band (200 at 100), which this rule leaves alone. Not
solved: a slow song whose drums are dense (the synthetic band's 85 BPM rock read at 170: 1.3 hits
per beat) keeps the fast class.

A producer's ×2 / ÷2 is their reading of the tempo: the class follows it, except where drums and
bass contradict it as above. :func:`song_seed` hashes the tempo folded into one octave [80, 160),
so ×2 / ÷2 does not reshuffle the look's variations (songs already inside that octave keep their
seed; others get a new one once).
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
    tempo = float(grid.tempo_bpm)
    while 0 < tempo < SEED_OCTAVE_BPM[0]:  # ×2 / ÷2 by the producer keeps the seed (module docstring)
        tempo *= 2.0
    while tempo >= SEED_OCTAVE_BPM[1]:
        tempo /= 2.0
    text = f"{round(tempo)}|{grid.meter_label}|{round(analysis.duration_seconds / 10.0)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % (2**31)


#: default_look's thresholds: tempo bands (BPM), a bright mix (loudness-weighted spectral centroid,
#: Hz) and a loud one (summed mean RMS of the stems). The brightness and loudness thresholds sit
#: near the upper quartile and the median of 58 songs (the shared songs and one excerpt of each
#: Freedoom song); at 2500 Hz and 0.05 (until 2026-12-04) almost no song was bright or quiet, and
#: three looks took 78 % of the songs (ink 16, grid 15, kaleidoscope 14, tunnel 10, starfield 2,
#: minimal 1). Now: kaleidoscope 12, tunnel 12, ink 10, glitch 9, minimal 7, grid 4, starfield 4.
FAST_BPM = 135.0
MID_BPM = 95.0
BRIGHT_HZ = 2000.0
LOUD_RMS = 0.12
#: perceived_bpm: events per grid beat (onsets merged within EVENT_MERGE_S) above which a slow grid
#: is heard at double tempo (the mean of the drums' and the bass's), and below which a fast grid is
#: heard at half (the drums').
DOUBLE_EVENTS_PER_BEAT = 3.0
HALVE_EVENTS_PER_BEAT = 0.8
EVENT_MERGE_S = 0.05
#: song_seed hashes the tempo folded into this octave (BPM, [low, high)).
SEED_OCTAVE_BPM = (80.0, 160.0)


def events_per_second(analysis: SongAnalysis, role: str) -> float | None:
    """Onsets per second of all stems of one role together (onsets closer than EVENT_MERGE_S count
    once); None when the song has no such stem."""
    stems = [s for s in analysis.stems.values() if s.role == role]
    if not stems or analysis.duration_seconds <= 0:
        return None
    t = np.sort(np.concatenate([np.asarray(s.onsets_s, dtype=np.float64) for s in stems]))
    if t.size:
        t = t[np.r_[True, np.diff(t) > EVENT_MERGE_S]]
    return float(t.size) / float(analysis.duration_seconds)


def perceived_bpm(analysis: SongAnalysis, tempo_bpm: float | None = None) -> float:
    """The tempo the speed class is chosen from: the grid's, doubled where drums and bass together
    play more than DOUBLE_EVENTS_PER_BEAT events per grid beat, halved where the drums play fewer
    than HALVE_EVENTS_PER_BEAT (module docstring)."""
    tempo = float(analysis.beat_grid.tempo_bpm if tempo_bpm is None else tempo_bpm)
    drums = events_per_second(analysis, "drums")
    if drums is None or tempo <= 0:
        return tempo
    bass = events_per_second(analysis, "bass")
    rates = [drums] if bass is None else [drums, bass]
    busy = float(np.mean(rates)) * 60.0 / tempo
    if tempo < MID_BPM and busy > DOUBLE_EVENTS_PER_BEAT:
        return tempo * 2.0
    if tempo >= FAST_BPM and drums * 60.0 / tempo < HALVE_EVENTS_PER_BEAT:
        return tempo / 2.0
    return tempo


def default_look(analysis: SongAnalysis, character: SongCharacter | None = None) -> str:
    """The shader look for a song whose producer chose none (see the module docstring)."""
    ch = character or song_character(analysis)
    bright = ch.brightness_hz >= BRIGHT_HZ
    tempo = ch.tempo_bpm if analysis is None else perceived_bpm(analysis, ch.tempo_bpm)
    if tempo >= FAST_BPM:
        return "glitch" if ch.minor else ("starfield" if bright else "grid")
    if tempo >= MID_BPM:
        return "tunnel" if bright or not ch.minor else "kaleidoscope"
    return "ink" if ch.energy > LOUD_RMS else "minimal"


def effective_engine(engine_settings, analysis: SongAnalysis, engine_name: str | None = None) -> tuple[int, dict]:
    """(run seed, extra engine settings) for a project's engine block: the producer's seed and look
    when set (a seed of 0 means "from the song"), else the song's own. ``engine_name``: the engine
    actually used when it is not the project's (``render --engine shader`` on a procedural
    project still gets the song's look and palette)."""
    seed = int(engine_settings.seed) or song_seed(analysis)
    extra: dict = {}
    if (engine_name or engine_settings.name).strip().lower() == "shader":
        character = song_character(analysis)  # once: it reads every stem's chroma and centroid
        if not engine_settings.look:
            extra["look"] = default_look(analysis, character)
        extra["base_hue"] = round(character.hue, 4)
        extra["variation_seed"] = seed  # each look's structure varies by song (SONG_VARIATIONS)
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


# --- every section its own look ----------------------------------------------------------------
#
# A song's sections move through *related* looks: the song's base look (default_look) for its
# average and quiet sections and a harder-hitting relative for its loudest ones (chorus, drop); the
# calm relatives are kept for quiet sections but not used by default (see auto_section_looks). Relatives share the base look's kind of motion, so the
# video stays one piece: the rushing looks (tunnel → starfield), the folded/geometric ones
# (kaleidoscope ↔ tunnel ↔ grid), the fast ones (grid/starfield ↔ glitch) and the fluid ones
# (minimal ↔ ink → oscilloscope). `titles` and `cover` are never chosen (they need the producer's
# text or picture). A base look outside LOOK_FAMILIES (a producer's own) is kept for every section.

#: Look families: base look (what default_look picks) → (calm relative, base, hard relative).
LOOK_FAMILIES: dict[str, tuple[str, str, str]] = {
    "tunnel": ("kaleidoscope", "tunnel", "starfield"),
    "kaleidoscope": ("tunnel", "kaleidoscope", "grid"),
    "grid": ("tunnel", "grid", "glitch"),
    "starfield": ("tunnel", "starfield", "glitch"),
    "glitch": ("grid", "glitch", "starfield"),
    "ink": ("minimal", "ink", "oscilloscope"),
    "minimal": ("ink", "minimal", "oscilloscope"),
}
#: A section at least this many dB above the song's typical level (the duration-weighted median of
#: its sections' levels), and within LOUDEST_DB of its loudest section, is "loud" (chorus, drop);
#: one at least QUIET_DB below it is "quiet" (intro, breakdown).
LOUD_DB = 1.0
LOUDEST_DB = 1.5
QUIET_DB = 3.0
#: The hit response (SectionLook.hit) of loud, average and quiet sections. Quiet sections hit as
#: hard as average ones: their hits are no weaker to the ear (onset strength is relative), and a
#: softer response there broke the song-wide onset–motion correlation (benchmarks/av_sync.py,
#: shared song 11, a loud guitar intro before the drums: ρ 0.27 with 0.7 and ink, 0.66 with one look).
#: For the same reason kaleidoscope's calm relative is the tunnel, not ink (ink moves 3× less per
#: unit of onset where there are no drums: measured slope 0.33 vs 1.96 in 11's intro).
HIT_LOUD = 1.5
HIT_QUIET = 1.0


def _level_curve(analysis: SongAnalysis) -> tuple[np.ndarray, float]:
    """The mix's RMS curve (linear) and its frame rate: the analysed mix where there is one, else the
    stems' power sum (uncorrelated parts add in power)."""
    if analysis.mix is not None:
        return np.asarray(analysis.mix.curves["rms"], dtype=np.float64), float(analysis.mix.frame_rate_hz)
    stems = list(analysis.stems.values())
    if not stems:
        return np.zeros(0), 1.0
    n = max(s.n_frames for s in stems)
    power = np.zeros(n)
    for s in stems:
        r = np.asarray(s.curves["rms"], dtype=np.float64)
        power[: r.size] += r ** 2
    return np.sqrt(power), float(stems[0].frame_rate_hz)


def section_levels_db(analysis: SongAnalysis, spans_s: list[tuple[float, float]]) -> list[float]:
    """Each span's level in dB: 20·log10 of the mean-square RMS of the mix over the span (an energy
    mean, so a quiet bar inside a loud section counts for little)."""
    rms, rate = _level_curve(analysis)
    if rms.size == 0:
        return [-120.0] * len(spans_s)

    def level(a: float, b: float) -> float:
        lo = min(int(round(a * rate)), rms.size - 1)
        hi = max(lo + 1, min(int(round(b * rate)), rms.size))
        return 10.0 * float(np.log10(max(float(np.mean(rms[lo:hi] ** 2)), 1e-12)))

    return [level(a, b) for a, b in spans_s]


def section_tiers(levels_db: list[float], durations_s: list[float]) -> list[str]:
    """"loud", "average" or "quiet" per section, against the song's typical level: the level reached
    by half of the song's time, counted from the quietest section (so of a verse and a chorus of
    equal length the verse is typical and the chorus loud)."""
    if not levels_db:
        return []
    order = sorted(range(len(levels_db)), key=lambda i: (levels_db[i], i))
    weights = np.maximum(np.asarray(durations_s, dtype=np.float64), 0.0)
    total = float(weights.sum())
    typical = levels_db[order[-1]]
    done = 0.0
    for i in order:
        done += float(weights[i])
        if done >= 0.5 * total - 1e-9:
            typical = levels_db[i]
            break
    top = max(levels_db)
    out = []
    for db in levels_db:
        if db >= typical + LOUD_DB and db >= top - LOUDEST_DB:
            out.append("loud")
        elif db <= typical - QUIET_DB:
            out.append("quiet")
        else:
            out.append("average")
    return out


def auto_section_looks(sections, analysis: SongAnalysis, base_look: str) -> tuple:
    """``sections`` (resolved :class:`~bridge.visuals.base.SectionLook`) with a look and a hit
    response for every section whose producer chose no look: ``base_look`` for average sections,
    its hard relative and HIT_LOUD for the loudest, the base look and HIT_QUIET for quiet ones.
    Deterministic: from the sections' levels in the song (mix RMS), nothing random."""
    from dataclasses import replace

    sections = tuple(sections)
    levels = section_levels_db(analysis, [(s.start_s, s.end_s) for s in sections])
    _, _, hard = LOOK_FAMILIES.get(base_look, (base_look, base_look, base_look))
    # Quiet sections keep the base look: a look moves by its own amount per unit of onset, so a
    # calmer look there made an intro's hits look weaker than they sound (av_sync, shared song 11:
    # ρ 0.47 with the tunnel intro before the kaleidoscope, 0.66 with one look). The calm relative
    # in LOOK_FAMILIES is not used by default.
    pick = {"loud": (hard, HIT_LOUD), "quiet": (base_look, HIT_QUIET), "average": (base_look, 1.0)}
    out = []
    for s, tier in zip(sections, section_tiers(levels, [s.end_s - s.start_s for s in sections]), strict=True):
        if s.look:
            out.append(s)  # the producer's choice
        else:
            look, hit = pick[tier]
            out.append(replace(s, look=look, hit=hit))
    return tuple(out)


def section_transitions(analysis: SongAnalysis, spans_s: list[tuple[float, float]]) -> list[str]:
    """A transition per section from the music: "cut" into a section at least LOUD_DB louder than
    the one before (the drop lands on its downbeat — detected sections start on one), "crossfade"
    otherwise (the first section's is never shown)."""
    levels = section_levels_db(analysis, spans_s)
    return ["cut" if i and levels[i] >= levels[i - 1] + LOUD_DB else "crossfade" for i in range(len(levels))]
