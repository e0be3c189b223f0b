"""Song-level tempo, beats, downbeats and meter from the stems' onset curves.

How it works (all on the analysis frame grid, ``ANALYSIS_SAMPLE_RATE / ANALYSIS_HOP`` ≈ 86 Hz):

1. **Onset streams.** Every audible stem gives three streams, its band-limited spectral flux
   ``onset_low`` (< 150 Hz: kick, bass notes), ``onset_mid`` (snare body, toms, chords) and
   ``onset_high`` (> 2 kHz: snare noise, hats), each scaled to unit standard deviation over the
   frames where the stem sounds. Drum-role stems carry ``DRUM_WEIGHT`` of the total weight (they
   define the beat in most produced music); without drums all stems share it equally. Separate
   bands matter: a kick on 1 and 3 and a snare on 2 and 4 are each periodic at two beats, but
   their sum is periodic at one. Streams of stems that are not drums lose their own moving average
   over ``PITCHED_FLUX_WINDOW_S`` first (half-wave rectified): a dense mix or a wall of distorted
   guitars has a flux that swells and fades over a few tenths of a second, and that smooth hump
   hides the beat in the autocorrelation (see :mod:`~bridge.analysis.periodicity`).
2. **Tempo** from a *metrical comb* over the weighted mean ``A(lag)`` of the streams' normalised
   autocorrelations. Every beat period ``T`` (``MIN_TEMPO_BPM``…``MAX_TEMPO_BPM``) and meter
   ``M`` ∈ {3, 4} scores ``A(T) + A(M·T) + HALF_BAR_WEIGHT·A(2T) [4/4 only] +
   SUBDIVISION_WEIGHT·A(T/2)`` minus ``METER_PENALTY`` × how much better another bar length fits
   (``A(3T)`` against 4/4; ``A(2T)``, ``A(4T)`` against 3/4), minus ``COMPOUND_PENALTY`` × a
   *tatum-rate prior* (below), plus a log-normal tempo prior; a period with no pulse of its own
   (``A(T)`` below ``PULSE_FLOOR``) is not a beat at all. Scoring the bar is what rejects the
   4/3-tempo error of syncopated grooves (three 16ths of a funk groove repeat often, but its bar is
   16 of them, not a multiple of 3). With ``beats_per_bar`` given, only that meter is scored, so
   the bar length picks the beat.
   The tatum-rate prior handles bars of twelve 16ths (3/4) grouped 3+3+3+3, e.g. a kick on every
   dotted 8th over 16th hats: there four beats of three 16ths fit the ACF as well as three beats
   of four. A beat that divides into three (``A(T/3) > A(T/2)``) is compound meter, and compound
   beats are made of 8th notes slower than ~0.25 s (12/8 at 60–80 BPM: 0.25–0.33 s); beats of
   three *fast* tatums (16ths) are rare, beats of four 16ths the norm. So the score loses
   ``A(T/3) − max(A(T/2), PULSE_FLOOR)`` when ``T/3`` is faster than ``FAST_TATUM_SECONDS`` (fading out by
   ``SLOW_TATUM_SECONDS``), and the same at the level ``T/2`` (else a beat of two dotted 8ths, half
   the 3/4 bar, takes over). Slow compound beats (6/8, 12/8) are not penalised.
   Within the winning tempo family, the drums decide between octaves: the kick → snare lag
   (:meth:`_Comb.backbeat`) and the snare's alternation, ``ALTERNATION_WEIGHT`` ×
   ``S(2T) − S(T)`` on the snare band's ACF (a backbeat recurs every two beats, not every beat).
   Whether the beat divides in three (compound meter) is read from where the tracked beats'
   onsets fall: on their thirds, not their quarters (``bars._beat_division``).
3. **Beats** by dynamic programming (Ellis 2007, "Beat tracking by dynamic programming"): the best
   chain of frames that sit on strong onsets, spaced about one period apart. Written here rather
   than calling ``librosa.beat.beat_track`` because librosa rounds the period to whole frames (a
   97 BPM beat is 53.3 frames: a tight tracker drifts by a frame every few beats), always forces a
   predecessor beat (so a pickup drags the first beats off the grid) and trims quiet song ends.
   Beat times are refined to sub-frame precision (parabolic peak of the local score); the tempo
   reported is the least-squares slope of beat time against beat index. Where the local tempo
   steps (not a ramp), the step is placed on the frame where the beats fit best
   (:func:`~bridge.analysis.beat_dp._place_steps`) instead of gliding between window centres.
4. **Meter and downbeats** from beat-synchronous accents: drum kick-band onsets (+), drum snare-band
   onsets (−, the backbeat is rarely on 1), harmonic change (chroma of the pitched stems, bass
   included, beat to beat; with no drums stem each frame weighs by its tonalness, so drum hits in
   a mix are not read as chord changes), loudness and beat-level novelty (``_novelty``: how different the two
   beats before are from the two after, over chroma, drum bands and levels), each z-scored. For each bar phase the weighted mean accent of
   its beats is taken; the best phase gives the downbeats, and unless ``beats_per_bar`` is given the
   meter is the one (3 or 4) whose bar-level ACF evidence plus best-phase contrast is larger, or 5
   or 7 where the beats' rhythm and harmony repeat clearly every 5 or 7 beats (``bars._odd_meter``);
   a short loop of whole bars gets the meter that alone divides its length (``bars._loop_meter``).

Weights were set on click tracks (60–200 BPM, 3/4 and 4/4), the demo song and the shared songs;
each of those stays correct when any one weight (but the prior's centre and width) moves ±30 %.
This holds for the tatum prior's ``COMPOUND_PENALTY`` and ``PULSE_FLOOR`` too; its thresholds
(``FAST_TATUM_SECONDS``, ``SLOW_TATUM_SECONDS``) are a prior's position, like the tempo prior's
centre: the shared 3/4 song's 16ths are 0.183 s.

A tempo hint (the DAW's / project's tempo) fixes the beat period: the tracker only chooses the
phase and follows small drifts (tightness ``HINT_TIGHTNESS``).

Code: this module holds the tempo (comb, local tempo) and :func:`track_beats`;
:mod:`~bridge.analysis.periodicity` the ACF and comb primitives, :mod:`~bridge.analysis.beat_dp`
step 3's dynamic program and its check of a changing tempo, :mod:`~bridge.analysis.beat_phase`
step 3's phase correction, :mod:`~bridge.analysis.bars` step 4 (meter, downbeats, swing).

Silence: when no stem is audible, :func:`track_beats` returns a grid with no beats, tempo 120 BPM
(or the hint), ``beats_per_bar`` or 4 and source "detected" instead of raising, so an empty or
not-yet-recorded project still opens (sections then fall back to one section).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bridge.analysis.bars import (
    _accent_features,
    _bar_repetition,
    _beat_division,
    _choose_meter,
    _compound_bar,
    _downbeat_indices,
    _loop_meter,
    _odd_meter,
    _phase_scores,
    _repeating_music,
    _swing,
)
from bridge.analysis.beat_dp import (
    _confirm_change,
    _dp_beats,
    _local_score,
    _place_steps,
    _refine,
)
from bridge.analysis.beat_phase import (
    _beat_presence,
    _correct_phase,
)
from bridge.analysis.periodicity import (
    METER_PENALTY,
    _autocorrelation,
    _Comb,
    _cross_correlation,
    _fit_length,
    _frame_rate_hz,
    _is_audible,
    _kick_snare,
    _meter_penalty,
    _streams,
    _viterbi,
)
from bridge.analysis.types import (
    ANALYSIS_HOP,
    ANALYSIS_SAMPLE_RATE,
    SILENCE_RMS,
    BeatGrid,
    StemFeatures,
)
from bridge.errors import AnalysisError

#: Tempo search range (BPM). Beats outside it are found at half/double tempo.
MIN_TEMPO_BPM = 50.0
MAX_TEMPO_BPM = 220.0
#: Log-normal tempo prior: centre (BPM), width (octaves) and its weight in the comb score.
PRIOR_CENTER_BPM = 120.0
PRIOR_OCTAVES = 1.0
PRIOR_WEIGHT = 1.5
#: Weights in the comb score of ``A(T/2)`` (binary subdivision), of ``A(2T)`` for 4/4 (the half
#: bar, a metrical level of 4/4 only) and of the wrong-bar-length penalty (module docstring).
SUBDIVISION_WEIGHT = 0.25
HALF_BAR_WEIGHT = 0.5
#: Tatum-rate prior on compound beats: a beat that divides into three rather than two (ACF at T/3
#: above T/2) is penalised by ``COMPOUND_PENALTY`` × that excess when its tatum T/3 is faster than
#: ``FAST_TATUM_SECONDS`` (fading linearly to no penalty at ``SLOW_TATUM_SECONDS``). Compound beats
#: (6/8, 12/8) are made of 8th notes of 0.25–0.35 s; beats of three 16ths are rare, beats of four
#: 16ths the norm, so three fast tatums are a cross-rhythm (dotted 8ths) over a simple beat.
COMPOUND_PENALTY = 4.0
#: ACF below this is noise, not a pulse (a click track's ACF between its beats reaches ~0.035):
#: the three-way split counts only by how far A(T/3) exceeds both A(T/2) and this floor, and a
#: beat period must reach it.
PULSE_FLOOR = 0.05
FAST_TATUM_SECONDS = 0.20
SLOW_TATUM_SECONDS = 0.25
#: Weight of the kick → snare backbeat evidence (``_Comb.backbeat``) in the comb score.
BACKBEAT_WEIGHT = 1.0
#: Weight of the snare's alternation (:meth:`_Comb.alternation`: snare every two beats, not every
#: beat) in the tempo score. Set on the dev songs (Freedoom 1 renders, shared dev songs): it fixed
#: three octave errors there (E1M2, E1M3, the half-time band song) and cost one (E2M4).
ALTERNATION_WEIGHT = 0.3
#: Periods (× the best period on periodicity alone) among which the backbeat chooses, and how
#: far (relative) around each the search goes.
BACKBEAT_RELATIVES = (0.5, 2.0 / 3.0, 1.0, 1.5, 2.0)
BACKBEAT_FAMILY_TOL = 0.05
#: A detected grid offers up to ``OTHER_READINGS`` other readings of its tempo (``BeatGrid.
#: other_readings``), looked for at these relatives of the chosen beat period (×2, ×3/2, ×2/3, ÷2).
OTHER_READINGS = 2
READING_RELATIVES = (0.5, 2.0 / 3.0, 1.5, 2.0)
#: Local tempo (``_local_periods``): window and hop (s), at most this many windows, candidates
#: within ±LOCAL_OCTAVES of the global tempo on a LOCAL_STEP-octave grid, and the Viterbi cost of
#: a tempo change per octave (in comb-score units: a change must pay off over a few windows).
LOCAL_WINDOW_S = 8.0
LOCAL_HOP_S = 2.0
LOCAL_MAX_WINDOWS = 60
LOCAL_OCTAVES = 1.05
LOCAL_STEP = 0.02
LOCAL_CHANGE_COST = 1.5
#: LOCAL_MIN_GAIN: how much better than one tempo the changing path must explain the song, over
#: and above what its changes already paid. 1.2 kept 80 → 160 songs at one tempo where the path
#: found the doubling but gained 1.1 (a single octave reading explains both halves almost as
#: well); 0.8 follows them: fresh-kind songs 24 → 25 of 30 held (every doubling), 23 → 24 dev,
#: warped Freedoom mixes 6 → 7 of 51 held, and no item changed on any other dev or held set, stems
#: or mix only (0.0 lost 3 Freedoom dev items).
LOCAL_MIN_GAIN = 0.8
#: Fewer onsets than this over all stems is no rhythm at all (a drone, DC, one hit): no beats.
MIN_RHYTHM_ONSETS = 8
#: A detected grid needs an onset on at least this share of its beats. Noise yields onsets at
#: random that the dynamic program still chains into "beats" (white noise: 122 BPM, 42 beats from
#: 15 onsets): there 6–28 % of the beats have one (brown noise up to 54 %), against ≥ 62 % on every
#: annotated song and band song (the 2.8-s madmom clip 62 %, the rest ≥ 70 %).
MIN_BEAT_PRESENCE = 0.4
#: DP tightness: how strongly successive beats are held to the period (Ellis' α; librosa uses 100).
TIGHTNESS = 200.0
#: Tightness when the tempo comes from a hint (a DAW tempo is exact: follow it closely).
HINT_TIGHTNESS = 1000.0
#: Tempo reported for a silent song (no beats).
SILENT_TEMPO_BPM = 120.0


def _log_prior(tempo_bpm: float) -> float:
    return -0.5 * (np.log2(tempo_bpm / PRIOR_CENTER_BPM) / PRIOR_OCTAVES) ** 2


def _compound_penalty(comb: _Comb, period: float) -> float:
    """Tatum-rate prior: how implausibly the beat ``period`` (frames) divides into three fast tatums.

    For the levels L = T and L = T/2: ``max(0, A(L/3) − max(A(L/2), PULSE_FLOOR))`` (how much
    better L splits in three than in two) times a weight that is 1 for tatums L/3 up to ``FAST_TATUM_SECONDS`` and
    falls linearly to 0 at ``SLOW_TATUM_SECONDS``; the larger of the two. A 12/8 shuffle (8ths
    ≥ 0.25 s) keeps its dotted-quarter beat, while a kick every dotted 8th over 16th hats (3 + 3 +
    3 + 3 sixteenths in a 3/4 bar) no longer wins as a beat of three 16ths (L = T) or of two
    dotted 8ths (L = T/2) over the notated beat of four 16ths.
    """
    worst = 0.0
    for level in (period,):
        tatum_s = level / 3.0 / _frame_rate_hz()
        fast = float(np.clip((SLOW_TATUM_SECONDS - tatum_s) / (SLOW_TATUM_SECONDS - FAST_TATUM_SECONDS),
                             0.0, 1.0))
        if fast > 0.0:
            worst = max(worst, fast * max(0.0, comb(level / 3.0) - max(comb(level / 2.0), PULSE_FLOOR)))
    return worst


def _comb_score(comb: _Comb, period: float, beats_per_bar: int, *, backbeat: bool = True) -> float:
    fr = _frame_rate_hz()
    beat = comb(period)
    if beat < PULSE_FLOOR:
        # Nothing recurs one period apart: not a beat, however well its bar and half bar fit (a
        # 60 BPM click scored as 120 BPM through its 2- and 4-second peaks alone).
        return -np.inf
    # A bar too long for the song to show (a short clip) counts as the beat level again: no
    # evidence either way, and no advantage for fast tempi whose bars still fit.
    half_bar = HALF_BAR_WEIGHT * comb(2.0 * period, default=beat) if beats_per_bar == 4 else 0.0
    return (
        beat
        + comb(beats_per_bar * period, default=beat)
        + half_bar
        + SUBDIVISION_WEIGHT * comb(period / 2.0)
        - METER_PENALTY * _meter_penalty(comb, period, beats_per_bar)
        - COMPOUND_PENALTY * _compound_penalty(comb, period)
        + (BACKBEAT_WEIGHT * comb.backbeat(period) + ALTERNATION_WEIGHT * comb.alternation(period) if backbeat else 0.0)
        + PRIOR_WEIGHT * _log_prior(60.0 * fr / period)
    )


def _period_grid() -> np.ndarray:
    """Beat periods (frames, a quarter-frame apart) from MAX_TEMPO_BPM down to MIN_TEMPO_BPM."""
    fr = _frame_rate_hz()
    return np.arange(60.0 * fr / MAX_TEMPO_BPM, 60.0 * fr / MIN_TEMPO_BPM, 0.25)


def _estimate_period(comb: _Comb, *, beats_per_bar: int | None) -> tuple[float, int, float]:
    """Best (beat period in frames, beats per bar, score) over the tempo range."""
    meters = (beats_per_bar,) if beats_per_bar else (4, 3)
    grid = _period_grid()
    min_period = float(grid[0])
    # The backbeat (kick → snare one beat later) separates a tempo from its octaves and 3:2
    # relatives; it says nothing about a period 5/4 of the beat, where a syncopated snare (kick on
    # 1, snare on the "e" of 2) can line up better than on the beat. So the periodicity alone picks
    # the tempo family, and the backbeat only chooses within it.
    family = max(((float(p), m) for p in grid for m in meters),
                 key=lambda pm: _comb_score(comb, pm[0], pm[1], backbeat=False))[0]
    best = (min_period, meters[0], -np.inf)
    for period in grid:
        if min(abs(period / (family * r) - 1.0) for r in BACKBEAT_RELATIVES) > BACKBEAT_FAMILY_TOL:
            continue
        for meter in meters:
            score = _comb_score(comb, float(period), meter)
            if score > best[2]:
                best = (float(period), meter, score)
    period, meter, score = best
    # Refine the period from the ACF peaks at the beat and at every multiple up to two bars: a
    # peak k periods away pins the period down k times more precisely.
    estimates, weights = [], []
    for k in range(1, 2 * meter + 1):
        value = comb.get(k * period)
        if value is None:
            break
        weight = k * comb(k * period)
        # The weight must be positive too: np.average with mixed-sign weights can land anywhere,
        # even below zero (a 3 s song with a 1.3 s stem gave a period of -17 frames and a crash).
        if value <= 0 or not weight > 0:
            continue
        estimates.append(comb.peak(k * period) / k)
        weights.append(weight)
    if estimates:
        refined = float(np.average(estimates, weights=weights))
        if abs(refined / period - 1.0) <= 0.1:  # a refinement, never a different tempo
            period = refined
    return period, meter, score


def _other_readings(comb: _Comb, period: float, meters: tuple[int, ...]) -> tuple[float, ...]:
    """The next-best readings of the tempo as factors of the chosen one (2.0: double), best first:
    the best comb score (backbeat included) within ``BACKBEAT_FAMILY_TOL`` of each of
    ``READING_RELATIVES`` × ``period``, a period with a pulse of its own only; at most ``OTHER_READINGS``.

    Why offer them: which octave (or 3:2 relative) of a beat listeners and annotators tap is partly
    convention (the same 140 BPM groove is written at 70 in one song, at 140 in the next), and no
    score separates a doubtful reading from a sure one (the margin to the runner-up predicts a wrong
    tempo with AUC 0.72 on the dev sets but 0.53 on the held-out ones). Where the tempo was wrong,
    though, the right one was among these two on 46 of 54 dev items and 90 of 110 held-out ones
    (stems and mixes alone; the first of them on 43 and 73; benchmarks/rhythm_accuracy.py, "an other
    reading is right"), so the app and the CLI offer them as one-click corrections instead of
    leaving the producer to guess ×2, ÷2 or 3:2.
    """
    grid = _period_grid()
    scored = []
    for relative in READING_RELATIVES:
        near = grid[np.abs(grid / (period * relative) - 1.0) <= BACKBEAT_FAMILY_TOL]
        best = max((_comb_score(comb, float(p), m) for p in near for m in meters), default=-np.inf)
        if np.isfinite(best):
            scored.append((best, 1.0 / relative))
    scored.sort(reverse=True)
    return tuple(factor for _, factor in scored[:OTHER_READINGS])


def _local_periods(envelope: np.ndarray, kick_snare: tuple[np.ndarray, np.ndarray] | None,
                   period: float, meters: tuple[int, ...]) -> np.ndarray | None:
    """Per-frame beat period when the tempo changes during the song, else None.

    The song is cut into overlapping windows of ``LOCAL_WINDOW_S``; in each, every candidate
    period within ±``LOCAL_OCTAVES`` of the global one (a log grid of ``LOCAL_STEP`` octaves) is
    scored with the same metrical comb as the whole song, on that window's autocorrelation and
    backbeat evidence. A Viterbi path through windows × candidates, charged
    ``LOCAL_CHANGE_COST`` per octave of tempo change, follows ramps and sudden changes (80 → 160
    BPM) while a single ambiguous window cannot flip the tempo. When the path never leaves ±4 %
    of the global period the song has one tempo and None is returned (the caller keeps the
    global period, which the whole song pins down more precisely).
    """
    fr = _frame_rate_hz()
    n = envelope.shape[0]
    win = int(LOCAL_WINDOW_S * fr)
    if n < int(1.5 * win):
        return None
    hop = max(int(LOCAL_HOP_S * fr), (n - win) // LOCAL_MAX_WINDOWS + 1)
    starts = list(range(0, n - win + 1, hop))
    if starts[-1] + win < n:
        starts.append(n - win)
    ratios = 2.0 ** np.arange(-LOCAL_OCTAVES, LOCAL_OCTAVES + 1e-9, LOCAL_STEP)
    cands = period * ratios
    keep = (cands >= 60.0 * fr / MAX_TEMPO_BPM) & (cands <= 60.0 * fr / MIN_TEMPO_BPM)
    cands, ratios = cands[keep], ratios[keep]
    if cands.size == 0:
        return None
    max_lag = int(min(win - 1, np.ceil(cands.max() * 4.5)))
    scores = np.full((len(starts), cands.size), -np.inf)
    for w, s0 in enumerate(starts):
        seg = envelope[s0 : s0 + win]
        acf = _autocorrelation(seg, max_lag)
        xc = None
        if kick_snare is not None:
            xc = _cross_correlation(kick_snare[0][s0 : s0 + win], kick_snare[1][s0 : s0 + win], max_lag)
        comb = _Comb(acf, max_lag=win / 2.0, backbeat=xc)
        comb.backbeat_rivals = (0.5,)
        for j, cand in enumerate(cands):
            scores[w, j] = max(_comb_score(comb, float(cand), m) for m in meters)
    finite = np.isfinite(scores)
    if not finite.any():
        return None
    scores = np.where(finite, scores, np.nanmin(np.where(finite, scores, np.nan)) - 1.0)
    # Viterbi over windows: transition cost proportional to the tempo change in octaves.
    log_r = np.log2(ratios)
    trans = LOCAL_CHANGE_COST * np.abs(log_r[:, None] - log_r[None, :])  # (from, to)
    path, best_total = _viterbi(scores, trans)
    local = cands[path]
    # Model selection: a changing tempo must explain the song clearly better than the best single
    # tempo (by LOCAL_MIN_GAIN, about one window's comb evidence), or a syncopated groove whose
    # 8-s windows are ambiguous would wander between readings.
    if best_total - float(scores.sum(axis=0).max()) < LOCAL_MIN_GAIN:
        return None
    if np.all(np.abs(local / period - 1.0) <= 0.04):
        return None
    centres = np.asarray(starts, dtype=np.float64) + win / 2.0
    return np.interp(np.arange(n), centres, local)


def _music_span(stems: Mapping[str, StemFeatures], n_frames: int) -> tuple[int, int] | None:
    """First and last frame where any stem is audible, or None for a silent song."""
    loud = np.zeros(n_frames, dtype=bool)
    for stem in stems.values():
        loud |= _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return None
    return int(idx[0]), int(idx[-1])


def _check_inputs(duration_seconds: float, tempo_hint_bpm: float | None, beats_per_bar: int | None) -> None:
    if not np.isfinite(duration_seconds) or duration_seconds <= 0:
        raise AnalysisError(
            f"duration_seconds={duration_seconds!r} is not a positive length; pass the song length in "
            f"seconds (the longest stem plus its offset)."
        )
    if tempo_hint_bpm is not None and not (np.isfinite(tempo_hint_bpm) and 1.0 <= tempo_hint_bpm <= 1000.0):
        raise AnalysisError(
            f"tempo_hint_bpm={tempo_hint_bpm!r} is not a usable tempo; pass a tempo in BPM between 1 and "
            f"1000, or None to detect it."
        )
    if beats_per_bar is not None and not (isinstance(beats_per_bar, (int, np.integer)) and 1 <= beats_per_bar <= 32):
        raise AnalysisError(
            f"beats_per_bar={beats_per_bar!r} is not a meter; pass the time signature's numerator "
            f"(e.g. 4 for 4/4, 3 for 3/4) or None to detect it."
        )


def track_beats(
    stems: Mapping[str, StemFeatures],
    *,
    duration_seconds: float,
    tempo_hint_bpm: float | None = None,
    beats_per_bar: int | None = None,
) -> BeatGrid:
    """Song-level tempo, beats, downbeats and meter from the stems' features.

    Parameters
    ----------
    stems : mapping name → StemFeatures
        Features of every stem (drum-role stems weigh most; see the module docstring).
    duration_seconds : float
        Song length; beats are kept within [0, duration_seconds].
    tempo_hint_bpm : float, optional
        A known tempo (the DAW's / project's). Used as the beat period as is: the tracker picks the
        phase and follows small drifts. Half/double of the perceived tempo is allowed.
    beats_per_bar : int, optional
        A known meter (time signature numerator). Detected (3 or 4) when None.

    Returns
    -------
    BeatGrid
        source "detected". For a song where no stem is audible: no beats, tempo
        ``tempo_hint_bpm`` or 120 BPM, ``beats_per_bar`` or 4.

    Raises
    ------
    AnalysisError
        duration_seconds, tempo_hint_bpm or beats_per_bar out of range.
    """
    _check_inputs(duration_seconds, tempo_hint_bpm, beats_per_bar)
    fr = _frame_rate_hz()
    n_frames = 1 + int(round(duration_seconds * ANALYSIS_SAMPLE_RATE)) // ANALYSIS_HOP
    meter_default = int(beats_per_bar) if beats_per_bar else 4
    empty = BeatGrid(
        tempo_bpm=float(tempo_hint_bpm or SILENT_TEMPO_BPM),
        beats_s=np.zeros(0),
        downbeats_s=np.zeros(0),
        beats_per_bar=meter_default,
        source="detected",
    )
    span = _music_span(stems, n_frames)
    streams = _streams(stems, n_frames)
    if span is None or not streams:
        return empty

    envelope = np.zeros(n_frames)
    for weight, env in streams:
        envelope += weight * env
    if not np.any(envelope > 0):
        return empty

    # --- tempo and meter -------------------------------------------------------------------
    max_lag = int(np.ceil(60.0 * fr / MIN_TEMPO_BPM * 9))  # two 4-beat bars at the slowest tempo
    acf = _autocorrelation(envelope, max_lag)
    kick_snare = _kick_snare(stems, n_frames)
    comb = _Comb(acf, max_lag=n_frames / 2.0,
                 backbeat=None if kick_snare is None else _cross_correlation(*kick_snare, max_lag))
    if kick_snare is not None:
        comb.snare_acf = _autocorrelation(kick_snare[1], max_lag)
    n_onsets = sum(stem.onsets_s.shape[0] for stem in stems.values() if _is_audible(stem))
    varying = None
    readings: tuple[float, ...] = ()
    if tempo_hint_bpm is not None:
        period = 60.0 * fr / float(tempo_hint_bpm)
        tightness = HINT_TIGHTNESS
        periods: float | np.ndarray = period
    else:
        if n_onsets < MIN_RHYTHM_ONSETS:
            return empty  # a drone, DC or a single hit: no tempo to report
        period, _, best_score = _estimate_period(comb, beats_per_bar=beats_per_bar)
        if not np.isfinite(best_score):
            return empty  # nothing recurs at any beat period
        tightness = TIGHTNESS
        meters = (int(beats_per_bar),) if beats_per_bar else (4, 3)
        readings = _other_readings(comb, period, meters)
        varying = _local_periods(envelope, kick_snare, period, meters)
        if varying is not None:
            varying = _confirm_change(envelope, period, varying, tightness)
        if varying is not None:
            # a 3:2 reading would set one tempo for a song whose tempo changes: only ×2 and ÷2
            # (which keep the detected beats; exactly 1 / READING_RELATIVES' 0.5 and 2) are offered
            readings = tuple(f for f in readings if f in (0.5, 2.0))
        periods = period if varying is None else varying

    # --- beats ---------------------------------------------------------------------------------
    local = _local_score(envelope, float(np.median(periods)))
    if varying is not None:
        periods = _place_steps(local, periods, tightness)
    frames = _dp_beats(local, periods, tightness)
    first, last = span
    keep = (frames >= first - period / 4.0) & (frames <= last + period / 4.0)
    frames = frames[keep]
    if frames.shape[0] < 2:
        return empty
    beats_s = _refine(local, frames) / fr
    beats_s = _correct_phase(stems, beats_s, envelope, n_frames)
    inside = (beats_s >= 0.0) & (beats_s <= duration_seconds)
    beats_s = beats_s[inside]
    confirmed = _beat_presence(stems, beats_s) >= MIN_BEAT_PRESENCE
    if tempo_hint_bpm is None and not confirmed and not _repeating_music(stems, beats_s * fr, n_frames):
        return empty  # noise: a chain of beats through onsets that happen at random, no rhythm
    frames = np.clip(np.round(beats_s * fr).astype(int), 0, n_frames - 1)

    if tempo_hint_bpm is not None:
        tempo_bpm = float(tempo_hint_bpm)
    else:
        idx = np.arange(beats_s.shape[0])
        slope = np.polyfit(idx, beats_s, 1)[0] if beats_s.shape[0] >= 3 else period / fr
        tempo_bpm = float(60.0 / slope) if slope > 0 else 60.0 * fr / period

    # --- meter and downbeats -----------------------------------------------------------------
    accents = _accent_features(stems, frames, period, n_frames)
    if beats_per_bar:
        meter = int(beats_per_bar)
    else:
        meter = _loop_meter(duration_seconds * fr / period) or _choose_meter(comb, period, accents, frames.shape[0])
    division = _beat_division(stems, beats_s) if tempo_hint_bpm is None or not beats_per_bar else 2
    if not beats_per_bar and division == 2 and confirmed:
        # an odd meter only on a grid the onsets confirm: on a doubtful one (a dense mix whose
        # onsets were mostly missed) a 5/4 came out of a grid at 5:3 of the true tempo
        meter = _odd_meter(_bar_repetition(stems, beats_s * fr, n_frames)) or meter
    phases = _phase_scores(accents, frames.shape[0], meter)
    if division == 3 and not beats_per_bar and meter == 4:
        meter = _compound_bar(phases)
        phases = _phase_scores(accents, frames.shape[0], meter)
    downbeats_s = beats_s[_downbeat_indices(accents, frames.shape[0], meter, phases)]
    return BeatGrid(
        tempo_bpm=tempo_bpm,
        beats_s=beats_s.astype(np.float64),
        downbeats_s=downbeats_s.astype(np.float64),
        beats_per_bar=int(meter),
        source="detected",
        beat_division=division,
        other_readings=readings,
        **_swing(stems, beats_s, division),
    )


def beat_grid_from_tempo(
    tempo_bpm: float,
    *,
    duration_seconds: float,
    beats_per_bar: int = 4,
    first_downbeat_seconds: float = 0.0,
) -> BeatGrid:
    """A constant-tempo grid (the project's / DAW's tempo), source "project".

    Beats run at ``60 / tempo_bpm`` s from ``first_downbeat_seconds`` (earlier beats of a pickup
    bar are included back to 0 s) up to ``duration_seconds``; every ``beats_per_bar``-th beat,
    counted from the first downbeat, is a downbeat.

    Raises
    ------
    AnalysisError
        tempo, duration, meter or first downbeat out of range.
    """
    _check_inputs(duration_seconds, tempo_bpm, beats_per_bar)
    if not np.isfinite(first_downbeat_seconds) or not (0.0 <= first_downbeat_seconds < duration_seconds):
        raise AnalysisError(
            f"first_downbeat_seconds={first_downbeat_seconds!r} is outside the song "
            f"(0 … {duration_seconds:.3f} s); pass where bar 1 starts, in seconds from song start."
        )
    period = 60.0 / float(tempo_bpm)
    # Beat k is at first_downbeat + k·period; negative k are the pickup beats before bar 1.
    k_first = -int(np.floor(first_downbeat_seconds / period + 1e-9))
    k_last = int(np.floor((duration_seconds - first_downbeat_seconds) / period + 1e-9))
    k = np.arange(k_first, k_last + 1)
    beats_s = np.clip(first_downbeat_seconds + k * period, 0.0, duration_seconds)
    downbeats_s = beats_s[k % int(beats_per_bar) == 0]
    return BeatGrid(
        tempo_bpm=float(tempo_bpm),
        beats_s=beats_s,
        downbeats_s=downbeats_s,
        beats_per_bar=int(beats_per_bar),
        source="project",
    )
