"""Synthetic band songs with exact ground truth, for any meter and any tempo map.

Rhythm analysis has to hold on music it was not tuned on: fast (160–200 BPM) and slow songs,
compound meters (6/8, 12/8), ramps and sudden tempo changes, swing. Real recordings with such
annotations are scarce and their licences rarely allow shipping them, so tests and
``benchmarks/rhythm_accuracy.py`` build songs here from the demo's instruments
(:mod:`bridge.demo.synth`) with the beat and downbeat times known by construction.

A song is a list of :class:`Segment` (bars, meter, tempo at start and end: a linear ramp in beats,
or a step between segments) and a *style* (drum pattern family). Seeds vary the pattern details
(syncopated kicks, hat rate, fills, velocities, timing jitter) so that a tracker cannot memorise
one pattern.

Drum pattern families (grid = 16ths for simple meters, 8ths for compound ones):

- ``rock``: kick on 1 and 3 (plus seeded syncopations), snare on the backbeat, 8th or 16th hats.
- ``four``: four-on-the-floor kick, clap/snare on 2 and 4, off-beat open hats.
- ``halftime``: kick on 1, snare on 3 only (half-time feel); hats in 8ths: the notated beat
  stays the quarter note.
- ``compound``: 6/8 and 12/8: kick on beat 1 (and 3 in 12/8), snare on the other beats,
  hats on every 8th.
- ``waltz``: 3/4, kick on 1, snare or hats on 2 and 3.
- ``drive``: rock with pushed kicks: kick (and bass) on 1 and on the "and" of 2 and of 4, snare on
  2 and 4, 8th hats. The kick → snare gap alternates between one beat and one and a half, and
  the kicks fall three 8ths apart, as a 12/8 song's dotted-quarter beats would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bridge.demo.synth import DrumHit, Note, render_bass, render_drums, render_pad

__all__ = ["BandSong", "Segment", "render_band_song"]

#: The kit's tracks with ``kit_tracks``: (stem name, drum kinds on it).
_KIT_TRACKS = (("kick", ("kick",)), ("snare", ("snare",)), ("hats", ("hat", "open_hat")), ("crash", ("crash",)))
#: Chord roots (MIDI) cycled bar by bar: i – VI – III – VII in A minor.
_ROOTS = (45, 41, 48, 43)
_MINOR = (0, 3, 7)
_MAJOR = (0, 4, 7)


@dataclass(frozen=True)
class Segment:
    """``bars`` bars of ``numerator``/``denominator`` from ``start_bpm`` ramping to ``end_bpm``.

    Tempo is in *beats* per minute where a beat is the quarter note for x/4 and the dotted quarter
    for compound x/8 meters (6/8 has 2 beats a bar, 12/8 has 4), as a listener taps it.
    """

    bars: int
    numerator: int = 4
    denominator: int = 4
    start_bpm: float = 120.0
    end_bpm: float | None = None

    @property
    def compound(self) -> bool:
        return self.denominator == 8 and self.numerator % 3 == 0 and self.numerator > 3

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def ticks_per_beat(self) -> int:
        """Grid steps per beat: 8ths in compound meter (3), 16ths otherwise (4)."""
        return 3 if self.compound else 4


@dataclass
class BandSong:
    """Stems (name → float32 (2, n)), and the truth: beats, downbeats, meter per beat."""

    sample_rate: int
    stems: dict[str, np.ndarray]
    beats_s: np.ndarray
    downbeats_s: np.ndarray
    beats_per_bar: int
    tempo_bpm: np.ndarray  # local tempo at each beat
    drum_hits_s: np.ndarray
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return next(iter(self.stems.values())).shape[1] / self.sample_rate

    @property
    def meter_label(self) -> str:
        return "{}/{}".format(self.extra["numerator"], self.extra["denominator"])

    def mix(self) -> np.ndarray:
        return np.sum(list(self.stems.values()), axis=0).astype(np.float32)


def _grid_times(segments: list[Segment], lead_in_s: float) -> list[tuple[float, int, int, Segment, int]]:
    """(time_s, bar index, tick in bar, segment, ticks per beat) for every grid tick."""
    out = []
    t = lead_in_s
    bar = 0
    for seg in segments:
        tpb = seg.ticks_per_beat
        n_ticks = seg.bars * seg.beats_per_bar * tpb
        end_bpm = seg.start_bpm if seg.end_bpm is None else seg.end_bpm
        for k in range(n_ticks):
            bpm = seg.start_bpm + (end_bpm - seg.start_bpm) * (k / n_ticks)
            out.append((t, bar + k // (seg.beats_per_bar * tpb), k % (seg.beats_per_bar * tpb), seg, tpb))
            t += 60.0 / bpm / tpb
        bar += seg.bars
    out.append((t, bar, 0, segments[-1], segments[-1].ticks_per_beat))  # end marker
    return out


def _pattern(style: str, seg: Segment, tick: int, bar: int, rng: np.random.Generator,
             opts: dict) -> list[tuple[str, float]]:
    """Drum hits (kind, velocity) on one grid tick of a bar."""
    tpb = seg.ticks_per_beat
    beat, sub = divmod(tick, tpb)
    bpb = seg.beats_per_bar
    hits: list[tuple[str, float]] = []
    fill_bar = opts["fills"] and bar % 4 == 3 and beat == bpb - 1
    if fill_bar:
        if sub % (2 if tpb == 4 else 1) == 0:
            hits.append(("snare", 0.6 + 0.4 * sub / tpb))
        if sub == 0:
            hits.append(("kick", 0.8))
        return hits
    if style == "four":
        if sub == 0:
            hits.append(("kick", 1.0))
            if beat % 2 == 1:
                hits.append(("snare", 0.9))
        if sub == tpb // 2:
            hits.append(("open_hat", 0.5))
        elif opts["hat16"] or sub % 2 == 0:
            hits.append(("hat", 0.35 if sub else 0.5))
    elif style == "halftime":
        if sub == 0 and beat == 0:
            hits.append(("kick", 1.0))
        if sub == 0 and beat == bpb // 2:
            hits.append(("snare", 1.0))
        if sub == 2 and beat == bpb - 1 and opts["syncopate"]:
            hits.append(("kick", 0.7))
        if sub % 2 == 0:
            hits.append(("hat", 0.45 if sub == 0 else 0.3))
    elif style == "compound" or seg.compound:
        if sub == 0 and beat % 2 == 0:
            hits.append(("kick", 1.0))
        if sub == 0 and beat % 2 == 1:
            hits.append(("snare", 0.9))
        if sub == 2 and opts["syncopate"] and beat % 2 == 1:
            hits.append(("kick", 0.6))
        hits.append(("hat", 0.45 if sub == 0 else 0.28))
    elif style == "waltz" or bpb == 3:
        if sub == 0 and beat == 0:
            hits.append(("kick", 1.0))
        if sub == 0 and beat > 0:
            hits.append(("snare", 0.7 if opts["syncopate"] else 0.55))
        if sub % 2 == 0:
            hits.append(("hat", 0.4 if sub == 0 else 0.25))
    elif style == "drive":
        eighth = tpb // 2
        if (beat == 0 and sub == 0) or (beat in (1, 3) and sub == eighth):
            hits.append(("kick", 1.0))
        if sub == 0 and beat % 2 == 1:
            hits.append(("snare", 1.0))
        if sub % eighth == 0:
            hits.append(("hat", 0.45 if sub == 0 else 0.32))
    elif style == "push":
        # Funk/latin "push": kick and bass anticipate beats 2 and 3 (and, seeded, 1) on the last
        # 16th before them, louder than anything on the beat; a soft kick on 1, snare on 2 and 4,
        # 16th hats. The loudest, most regular low hits are a 16th early all song long.
        if sub == 0 and beat == 0:
            hits.append(("kick", 0.5))
        if sub == tpb - 1 and (beat in (0, 1) or (beat == bpb - 1 and opts["syncopate"])):
            hits.append(("kick", 1.0))
        if sub == 0 and beat % 2 == 1:
            hits.append(("snare", 0.9))
        hits.append(("hat", 0.3 if sub == 0 else 0.22))
    else:  # rock
        if sub == 0 and beat % 2 == 0:
            hits.append(("kick", 1.0))
        if sub == 0 and beat % 2 == 1:
            hits.append(("snare", 1.0))
        if opts["syncopate"] and ((beat == 1 and sub == 2) or (beat == bpb - 2 and sub == 3)):
            hits.append(("kick", 0.75))
        if opts["hat16"] or sub % 2 == 0:
            hits.append(("hat", 0.45 if sub == 0 else (0.32 if sub == 2 else 0.22)))
    if sub == 0 and beat == 0 and bar % 4 == 0 and opts["crash"]:
        hits.append(("crash", 0.6))
    if opts.get("wash") and sub % max(1, tpb // 2) == 0:
        # busy cymbals: a crash-ride on every 8th, as loud off the beat as on it, over the kit
        hits.append(("crash", 0.55))
    return hits


def render_band_song(
    segments: list[Segment],
    *,
    style: str = "rock",
    seed: int = 0,
    sample_rate: int = 22050,
    lead_in_s: float = 0.3,
    swing: float = 0.0,
    jitter_ms: float = 4.0,
    drums_enter_bar: int = 0,
    with_bass: bool = True,
    with_keys: bool = True,
    description: str = "",
    options: dict | None = None,
    kit_tracks: bool = False,
) -> BandSong:
    """Render a drums / bass / keys song over ``segments``; see the module docstring.

    ``swing`` in [0, 0.5): the off-beat 16th (8th in compound meter, which is not swung) is delayed
    by this fraction of a 16th-pair. ``drums_enter_bar``: bars of bass and keys alone before the
    drums come in. ``options`` overrides the seeded pattern choices ("syncopate", "hat16", "fills",
    "crash": bools) and adds "wash" (busy cymbals: a crash-ride on every 8th; off unless given).
    Beats and downbeats in the result are the notated ones (never swung or jittered).
    ``kit_tracks``: the kit as separate stems ``kick``, ``snare``, ``hats`` (closed and open) and
    ``crash``, as a DAW's "export all tracks" gives them, instead of one ``drums`` bus.
    """
    rng = np.random.default_rng(seed)
    opts = {
        "syncopate": bool(rng.random() < 0.6),
        "hat16": bool(rng.random() < 0.4),
        "fills": bool(rng.random() < 0.7),
        "crash": bool(rng.random() < 0.7),
    }
    opts.update(options or {})
    grid = _grid_times(segments, lead_in_s)
    end_s = grid[-1][0] + 1.0
    n = int(round(end_s * sample_rate))
    hits: list[DrumHit] = []
    beats, downbeats, beat_tempo = [], [], []
    bass_notes: list[Note] = []
    chords: list[list[Note]] = []
    for i, (t, bar, tick, seg, tpb) in enumerate(grid[:-1]):
        tick_len = grid[i + 1][0] - t
        beat, sub = divmod(tick, tpb)
        if sub == 0:
            beats.append(t)
            beat_tempo.append(60.0 / (tick_len * tpb))
            if beat == 0:
                downbeats.append(t)
        shift = swing * 2.0 * tick_len if (tpb == 4 and sub % 2 == 1) else 0.0
        hit_t = t + shift + rng.normal(0.0, jitter_ms / 1000.0)
        if bar >= drums_enter_bar or (bar == drums_enter_bar - 1 and beat == seg.beats_per_bar - 1):
            for kind, vel in _pattern(style, seg, tick, bar, rng, opts):
                v = float(np.clip(vel * rng.uniform(0.85, 1.0), 0.05, 1.0))
                hits.append(DrumHit(max(0.0, hit_t), kind, v))
        root = _ROOTS[bar % len(_ROOTS)]
        # Bass: on the beat (and seeded off-beat 8ths), root or fifth; with the kick in "push".
        if style == "push":
            bass_on = (sub == tpb - 1 and (beat in (0, 1) or (beat == seg.beats_per_bar - 1 and opts["syncopate"])))
        elif style == "drive":
            bass_on = (beat == 0 and sub == 0) or (beat in (1, 3) and sub == tpb // 2)
        else:
            bass_on = sub == 0 or (sub == tpb // 2 and tpb == 4 and opts["syncopate"])
        if with_bass and bass_on:
            pitch = root + (7 if (sub and rng.random() < 0.5) else 0)
            bass_notes.append(Note(hit_t, max(0.05, tick_len * tpb * 0.45), pitch, 0.9 if sub == 0 else 0.7))
        # Keys: a chord per bar, on the downbeat, or on the 16th before it in "push".
        chord_tick = seg.beats_per_bar * tpb - 1 if style == "push" else 0
        if with_keys and tick == chord_tick:
            chord_bar = bar + 1 if chord_tick else bar
            croot = _ROOTS[chord_bar % len(_ROOTS)]
            bar_len = grid[min(i + seg.beats_per_bar * tpb, len(grid) - 1)][0] - t
            quality = _MINOR if chord_bar % 4 in (0, 2) else _MAJOR
            chords.append([Note(hit_t if chord_tick else t, bar_len * 0.95, croot + 24 + q, 0.5) for q in quality])
    stems: dict[str, np.ndarray] = {}
    drum_rng = np.random.default_rng(seed + 1000)
    if kit_tracks:
        state = drum_rng.bit_generator.state
        for name, kinds in _KIT_TRACKS:
            part = [h for h in hits if h.kind in kinds]
            if part:
                drum_rng.bit_generator.state = state  # each track's sounds as in the bus
                stems[name] = (0.7 * render_drums(part, n, sample_rate, drum_rng)).astype(np.float32)
    else:
        stems["drums"] = (0.7 * render_drums(hits, n, sample_rate, drum_rng)).astype(np.float32)
    if with_bass and bass_notes:
        bass = render_bass(bass_notes, n, sample_rate)
        stems["bass"] = (0.5 * bass / max(1e-9, float(np.max(np.abs(bass))))).astype(np.float32)
    if with_keys and chords:
        pad = render_pad(chords, n, sample_rate, cutoff_hz=np.full(n, 1800.0), duck_gain=np.ones(n),
                         rng=np.random.default_rng(seed + 2000))
        stems["keys"] = (0.35 * pad / max(1e-9, float(np.max(np.abs(pad))))).astype(np.float32)
    bpb = segments[0].beats_per_bar
    return BandSong(
        sample_rate=sample_rate,
        stems=stems,
        beats_s=np.asarray(beats),
        downbeats_s=np.asarray(downbeats),
        beats_per_bar=bpb,
        tempo_bpm=np.asarray(beat_tempo),
        drum_hits_s=np.asarray(sorted(h.time_s for h in hits)),
        description=description,
        extra={"style": style, "seed": seed, "swing": swing, "numerator": segments[0].numerator,
               "denominator": segments[0].denominator, **opts},
    )
