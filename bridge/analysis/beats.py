"""Song-level tempo, beats, downbeats and meter from the stems' onset curves.

How it works (all on the analysis frame grid, ``ANALYSIS_SAMPLE_RATE / ANALYSIS_HOP`` ≈ 86 Hz):

1. **Onset streams.** Every audible stem gives three streams, its band-limited spectral flux
   ``onset_low`` (< 150 Hz: kick, bass notes), ``onset_mid`` (snare body, toms, chords) and
   ``onset_high`` (> 2 kHz: snare noise, hats), each scaled to unit standard deviation over the
   frames where the stem sounds. Drum-role stems carry ``DRUM_WEIGHT`` of the total weight (they
   define the beat in most produced music); without drums all stems share it equally. Separate
   bands matter: a kick on 1 and 3 and a snare on 2 and 4 are each periodic at two beats, but
   their sum is periodic at one.
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
   A compound beat (``A(T/3) > A(T/2)``) must also have onsets on its thirds
   (:func:`_has_thirds`), which a dense straight-16th texture lacks.
3. **Beats** by dynamic programming (Ellis 2007, "Beat tracking by dynamic programming"): the best
   chain of frames that sit on strong onsets, spaced about one period apart. Written here rather
   than calling ``librosa.beat.beat_track`` because librosa rounds the period to whole frames (a
   97 BPM beat is 53.3 frames: a tight tracker drifts by a frame every few beats), always forces a
   predecessor beat (so a pickup drags the first beats off the grid) and trims quiet song ends.
   Beat times are refined to sub-frame precision (parabolic peak of the local score); the tempo
   reported is the least-squares slope of beat time against beat index.
4. **Meter and downbeats** from beat-synchronous accents: drum kick-band onsets (+), drum snare-band
   onsets (−, the backbeat is rarely on 1), harmonic change (chroma of the pitched stems, bass
   included, beat to beat), loudness and beat-level novelty (``_novelty``: how different the two
   beats before are from the two after, over chroma, drum bands and levels), each z-scored. For each bar phase the weighted mean accent of
   its beats is taken; the best phase gives the downbeats, and unless ``beats_per_bar`` is given the
   meter is the one (3 or 4) whose bar-level ACF evidence plus best-phase contrast is larger.

Weights were set on click tracks (60–200 BPM, 3/4 and 4/4), the demo song and the shared songs;
each of those stays correct when any one weight (but the prior's centre and width) moves ±30 %.
This holds for the tatum prior's ``COMPOUND_PENALTY`` and ``PULSE_FLOOR`` too; its thresholds
(``FAST_TATUM_SECONDS``, ``SLOW_TATUM_SECONDS``) are a prior's position, like the tempo prior's
centre: the shared 3/4 song's 16ths are 0.183 s.

A tempo hint (the DAW's / project's tempo) fixes the beat period: the tracker only chooses the
phase and follows small drifts (tightness ``HINT_TIGHTNESS``).

Silence: when no stem is audible, :func:`track_beats` returns a grid with no beats, tempo 120 BPM
(or the hint), ``beats_per_bar`` or 4 and source "detected" instead of raising, so an empty or
not-yet-recorded project still opens (sections then fall back to one section).
"""

from __future__ import annotations

from collections.abc import Mapping

import librosa
import numpy as np
import scipy.ndimage
import scipy.signal

from bridge.analysis.types import (
    ANALYSIS_HOP,
    ANALYSIS_SAMPLE_RATE,
    ONSET_BAND_CURVE_NAMES,
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
METER_PENALTY = 1.0
#: Relative tolerance of the comb's look-ups: each level may match the ACF peak within ±1 % of
#: k·T (human timing, a beat period between two frames). Wider lets a period borrow the peaks of
#: a neighbouring tempo at some levels while dodging the penalty at others.
COMB_TOLERANCE = 0.01
RIVAL_TOLERANCE = 0.03
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
#: Grid shifts (fractions of a beat) tried by ``_correct_phase`` and the margin a shift needs (set
#: on the dev songs: shared 12's off-beat lock is +12 % off, shared 01's funk stays 7 % short of a
#: wrong half-beat shift; both sides are within reach of this knob — see the README's table).
PHASE_SHIFTS = (-0.25, 0.25, -1.0 / 3.0, 1.0 / 3.0, -1.0 / 6.0, 1.0 / 6.0, 0.5)
#: Phase correction (:func:`_correct_phase`): window length in beats, the weight of salience
#: beside drum presence, the cost of a change of phase between windows, the current phase's
#: bonus, and how near a drum onset must be to count as on a beat.
PHASE_WINDOW_BEATS = 8
PHASE_SALIENCE_WEIGHT = 0.25
PHASE_SNARE_WEIGHT = 0.5
PHASE_CHANGE_COST = 0.3
PHASE_STAY_BONUS = 0.05
PRESENCE_TOLERANCE_S = 0.035
#: Weight and tolerance of the long–short swing test in :func:`_correct_phase`.
SWING_SHORT_WEIGHT = 0.5
SWING_TOLERANCE_S = 0.025
PHASE_SHIFT_MARGIN = 0.10
#: Local tempo (``_local_periods``): window and hop (s), at most this many windows, candidates
#: within ±LOCAL_OCTAVES of the global tempo on a LOCAL_STEP-octave grid, and the Viterbi cost of
#: a tempo change per octave (in comb-score units: a change must pay off over a few windows).
LOCAL_WINDOW_S = 8.0
LOCAL_HOP_S = 2.0
LOCAL_MAX_WINDOWS = 60
LOCAL_OCTAVES = 1.05
LOCAL_STEP = 0.02
LOCAL_CHANGE_COST = 1.5
LOCAL_MIN_GAIN = 1.2
#: Fewer onsets than this over all stems is no rhythm at all (a drone, DC, one hit): no beats.
MIN_RHYTHM_ONSETS = 8
#: A detected grid needs an onset on at least this share of its beats. Noise yields onsets at
#: random that the dynamic program still chains into "beats" (white noise: 122 BPM, 42 beats from
#: 15 onsets): there 6–28 % of the beats have one (brown noise up to 54 %), against ≥ 62 % on every
#: annotated song and band song (the 2.8-s madmom clip 62 %, the rest ≥ 70 %).
MIN_BEAT_PRESENCE = 0.4
#: Margin 3/4 needs over 4/4 in the meter decision ("4/4 unless the music shows otherwise").
TRIPLE_METER_MARGIN = 0.05
#: Compound meter: how much better a beat must split into three than two (``_beat_division``) and
#: how much the 12/8 downbeat must stand out from beat 3, relative to the weak beats (``_compound_bar``).
COMPOUND_MARGIN = 0.05
COMPOUND_BAR_CONTRAST = 0.5
#: Cost (in units of the per-beat accent's standard deviation) of moving the bar phase mid-song.
#: Raised from 4 on the Freedoom dev renders: the phase jumped on fills and lost half a song's
#: downbeats (E3M4, E3M5); a real change of bar (the tempo-step band songs) still moves it.
BAR_RESET_COST = 8.0
#: Swing (``_swing``): height of the off-beat 16th's peak (share of the off-beat 8th's) for 16th swing,
#: positions per beat of the profile, and the
#: smallest long : short ratio reported as swing (60 : 40; a lighter push reads as straight, and
#: onset timing within a frame or two cannot tell it apart).
SWING_MIN_SHARE = 0.4
SWING_BINS = 96
SWING_MIN_RATIO = 1.5
#: A compound beat's thirds must each stand this far (unit-std onset envelope) above the beat
#: profile's median (:func:`_has_thirds`).
THIRDS_MIN = 0.1
#: Weight of the downbeat-phase contrast (beat-synchronous accents) in the meter decision.
PHASE_CONTRAST_WEIGHT = 0.5
#: Weights of the beat-synchronous accents that find the downbeat (each accent is z-scored):
#: kick-band onsets of drum stems, their snare-band onsets (negative: the backbeat), harmonic
#: change (chroma of the pitched stems, beat to beat) and loudness.
ACCENT_WEIGHTS = {"kick": 1.0, "snare": -0.5, "harmony": 1.2, "loudness": 0.3, "novelty": 1.0}
#: Half-width (beats) of the checkerboard kernel of the beat-level novelty accent (``_novelty``).
NOVELTY_HALF_BEATS = 2
#: Share of the total stream weight given to drum-role stems when there are any.
DRUM_WEIGHT = 0.75
#: DP tightness: how strongly successive beats are held to the period (Ellis' α; librosa uses 100).
TIGHTNESS = 200.0
#: Tightness when the tempo comes from a hint (a DAW tempo is exact: follow it closely).
HINT_TIGHTNESS = 1000.0
#: Tempo reported for a silent song (no beats).
SILENT_TEMPO_BPM = 120.0


def _frame_rate_hz() -> float:
    return ANALYSIS_SAMPLE_RATE / ANALYSIS_HOP


def _fit_length(curve: np.ndarray, n_frames: int) -> np.ndarray:
    """Pad with zeros / truncate the last axis of ``curve`` to ``n_frames``."""
    curve = np.asarray(curve, dtype=np.float64)
    if curve.shape[-1] >= n_frames:
        return curve[..., :n_frames]
    pad = [(0, 0)] * (curve.ndim - 1) + [(0, n_frames - curve.shape[-1])]
    return np.pad(curve, pad)


def _is_audible(stem: StemFeatures) -> bool:
    return float(np.max(stem.curves["rms"], initial=0.0)) >= SILENCE_RMS


def _normalise(env: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Scale an onset envelope to unit standard deviation over the frames where its stem sounds.

    Over *active* frames, so a stem that plays only in the chorus is not boosted by its silence.
    """
    values = env[active] if np.count_nonzero(active) > 16 else env
    scale = float(np.std(values))
    return env / scale if scale > 1e-9 else np.zeros_like(env)


def _streams(stems: Mapping[str, StemFeatures], n_frames: int) -> list[tuple[float, np.ndarray]]:
    """(weight, normalised onset envelope (n_frames,)) per band of every audible stem.

    Weights sum to 1 (the list is empty when nothing is audible).
    """
    drums: list[np.ndarray] = []
    others: list[np.ndarray] = []
    for stem in stems.values():
        if not _is_audible(stem):
            continue
        active = _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
        target = drums if stem.role == "drums" else others
        for band in ONSET_BAND_CURVE_NAMES:
            curve = stem.curves.get(band, stem.curves["onset"])  # features from older caches
            target.append(_normalise(_fit_length(curve, n_frames), active))
    drum_share = DRUM_WEIGHT if (drums and others) else (1.0 if drums else 0.0)
    return ([(drum_share / len(drums), env) for env in drums]
            + [((1.0 - drum_share) / len(others), env) for env in others])


def _autocorrelation(env: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of ``env`` minus its 1-s moving average, normalised to A[0] = 1.

    The moving average is removed so that slow loudness changes (a fade, a build) do not add a broad
    hump to every lag; "unbiased" (divided by the overlap length) so that bar-length lags are not
    penalised against beat-length lags.
    """
    fr = _frame_rate_hz()
    detrended = env - scipy.ndimage.uniform_filter1d(env, size=max(3, int(fr)), mode="nearest")
    n = detrended.shape[0]
    max_lag = min(max_lag, n - 1)
    if max_lag < 2:
        return np.zeros(max(max_lag, 1))
    ac = librosa.autocorrelate(detrended, max_size=max_lag)
    ac = ac * n / (n - np.arange(max_lag))
    return ac / ac[0] if ac[0] > 1e-12 else np.zeros_like(ac)


def _cross_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised cross-correlation ``X[lag] = Σ a[t]·b[t+lag]`` (lag ≥ 0), both minus their 1-s
    moving average, unbiased like :func:`_autocorrelation`, divided by sqrt(A_a[0]·A_b[0])."""
    fr = _frame_rate_hz()
    size = max(3, int(fr))
    a = a - scipy.ndimage.uniform_filter1d(a, size=size, mode="nearest")
    b = b - scipy.ndimage.uniform_filter1d(b, size=size, mode="nearest")
    n = a.shape[0]
    max_lag = min(max_lag, n - 1)
    norm = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    if max_lag < 2 or norm < 1e-12:
        return np.zeros(max(max_lag, 1))
    full = scipy.signal.correlate(b, a, mode="full", method="fft")  # full[n-1+lag] = Σ a[t] b[t+lag]
    xc = full[n - 1 : n - 1 + max_lag]
    return xc * n / (n - np.arange(max_lag)) / norm


def _window_max(values: np.ndarray, lag: float, tol: float, max_lag: float) -> float | None:
    """Max of ``values`` over lags within ±``tol`` of ``lag``; None when that reaches below lag 1
    or past ``max_lag`` (no evidence there)."""
    lo = int(np.floor(lag * (1.0 - tol)))
    hi = int(np.ceil(lag * (1.0 + tol))) + 1
    if lo < 1 or lag * (1.0 + tol) > max_lag:
        return None
    return float(values[lo:hi].max())


class _Comb:
    """Look-ups of the autocorrelation at (fractional) lags, tolerant to ±``tol`` of the lag.

    ``max_lag``: the longest lag the song can vouch for. Beyond half the song the ACF rests on
    fewer than two repetitions (and the unbiased normalisation amplifies its noise), so such lags
    return None ("no evidence") rather than a number.
    """

    def __init__(self, acf: np.ndarray, *, max_lag: float, tol: float = COMB_TOLERANCE,
                 backbeat: np.ndarray | None = None) -> None:
        self.acf = acf
        self.tol = tol
        self.max_lag = min(float(max_lag), acf.shape[0] - 2.0)
        self.xcorr = backbeat
        self.snare_acf: np.ndarray | None = None

    def backbeat(self, period: float) -> float:
        """Kick → snare evidence that ``period`` is the beat: the drums' kick-band onsets followed
        one period later by snare-band onsets (X(T)), more than half a period later (X(T/2)).

        Rock, pop, funk, hip-hop and most dance music put the snare (or clap) one *beat* after the
        kick (backbeat on 2 and 4; 6/8 and 12/8 put it one dotted quarter later; a waltz on 2 and
        3), while at half the tempo it falls half a period after it and at double tempo two
        periods. This is what separates 170 BPM from 85 BPM when both fit the onsets' periodicity
        equally well. 0 without a drums stem."""
        if self.xcorr is None:
            return 0.0
        limit = self.xcorr.shape[0] - 1.0

        def look(lag: float) -> float:
            value = _window_max(self.xcorr, lag, self.tol, limit)
            return 0.0 if value is None else value

        return look(period) - max(look(period / 2.0), 0.0)

    def alternation(self, period: float) -> float:
        """Snare-band evidence that ``period`` is the beat: the snare recurs every two beats
        (S(2T)) and not every beat (S(T)). 0 without a drums stem or past the song's evidence."""
        if self.snare_acf is None:
            return 0.0
        limit = min(self.max_lag, self.snare_acf.shape[0] - 2.0)
        two = _window_max(self.snare_acf, 2.0 * period, self.tol, limit)
        one = _window_max(self.snare_acf, period, self.tol, limit)
        if two is None or one is None:
            return 0.0
        return two - max(one, 0.0)

    def get(self, lag: float, tol: float | None = None) -> float | None:
        return _window_max(self.acf, lag, self.tol if tol is None else tol, self.max_lag)

    def __call__(self, lag: float, default: float = 0.0) -> float:
        value = self.get(lag)
        return default if value is None else value

    def peak(self, lag: float) -> float:
        """Fractional lag of the ACF maximum near ``lag`` (parabolic interpolation)."""
        lo = max(1, int(np.floor(lag * (1.0 - self.tol))))
        hi = min(self.acf.shape[0] - 1, int(np.ceil(lag * (1.0 + self.tol))) + 1)
        if hi - lo < 1:
            return lag
        i = lo + int(np.argmax(self.acf[lo:hi]))
        if 1 <= i < self.acf.shape[0] - 1:
            a, b, c = self.acf[i - 1], self.acf[i], self.acf[i + 1]
            denom = a - 2 * b + c
            if denom < 0:
                # At the window's edge the neighbour can be higher than acf[i]: the vertex then
                # lies outside [i-1, i+1] (and a near-flat ACF put it at -17 frames, a negative
                # beat period). The peak is between the neighbours, whatever the parabola says.
                return i + float(np.clip(0.5 * (a - c) / denom, -1.0, 1.0))
        return float(i)


def _meter_penalty(comb: _Comb, period: float, beats_per_bar: int) -> float:
    """How much better another bar length fits than ``beats_per_bar`` (≥ 0; 0 without evidence)."""
    bar = comb.get(beats_per_bar * period)
    if beats_per_bar == 3:
        rivals = (2, 4)
    elif beats_per_bar == 4:
        rivals = (3,)
    else:  # 2, 5, 6, 7…: compare against the common meters
        rivals = (3, 4)
    # Rivals are looked up with a wider tolerance than the evidence, so that a period a little
    # off the true one cannot keep the evidence and dodge the penalty.
    values = [v for v in (comb.get(k * period, tol=RIVAL_TOLERANCE) for k in rivals) if v is not None]
    if bar is None or not values:
        return 0.0
    return max(0.0, max(values) - bar)


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


def _estimate_period(comb: _Comb, *, beats_per_bar: int | None) -> tuple[float, int, float]:
    """Best (beat period in frames, beats per bar, score) over the tempo range."""
    fr = _frame_rate_hz()
    meters = (beats_per_bar,) if beats_per_bar else (4, 3)
    min_period = 60.0 * fr / MAX_TEMPO_BPM
    max_period = 60.0 * fr / MIN_TEMPO_BPM
    grid = np.arange(min_period, max_period, 0.25)
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


def _local_score(envelope: np.ndarray, period: float) -> np.ndarray:
    """The onset envelope smoothed by a narrow Gaussian (σ = period / 32, as Ellis and librosa)."""
    sigma = max(period / 32.0, 0.5)
    return scipy.ndimage.gaussian_filter1d(envelope, sigma=sigma, mode="constant")


def _dp_beats(local: np.ndarray, period: float | np.ndarray, tightness: float) -> np.ndarray:
    """Ellis' beat-tracking dynamic program with a fractional, optionally time-varying period.

    C[t] = local[t] + max_{t−2P ≤ τ ≤ t−P/2} (C[τ] − α·log²((t−τ)/P)) with P = P(t) when
    ``period`` is an array (one period per frame: a tempo ramp or change). Frames are processed
    in blocks of ⌈min P/2⌉: every predecessor of a block lies before it, so each block is one
    vectorised step (≈ 40× fewer Python iterations than frame by frame). Returns beat frame indices.
    """
    n = local.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    periods = np.broadcast_to(np.asarray(period, dtype=np.float64), (n,))
    block = max(1, int(np.ceil(float(periods.min()) / 2.0)))
    cumscore = local.astype(np.float64).copy()
    backlink = np.full(n, -1, dtype=np.int64)
    for start in range(block, n, block):
        stop = min(n, start + block)
        p = float(periods[start])
        gaps = np.arange(max(block, int(np.ceil(p / 2.0))), int(np.floor(2.0 * p)) + 1)
        penalty = tightness * np.log(gaps / p) ** 2  # shape (n_gaps,)
        t = np.arange(start, stop)[:, None]  # (b, 1)
        pred = t - gaps[None, :]  # (b, n_gaps)
        valid = pred >= 0
        cand = np.where(valid, cumscore[np.clip(pred, 0, None)] - penalty[None, :], -np.inf)
        best = np.argmax(cand, axis=1)
        best_score = cand[np.arange(stop - start), best]
        # A chain may also start afresh here (Ellis' DP forces a predecessor, however badly
        # placed, which drags the first beats of a song towards a pickup and then drifts back).
        ok = np.isfinite(best_score) & (best_score > 0.0)
        cumscore[start:stop] = local[start:stop] + np.where(ok, best_score, 0.0)
        backlink[start:stop] = np.where(ok, pred[np.arange(stop - start), best], -1)
    # The last beat: the best-scoring frame within the final period (C only grows along a chain).
    tail_start = max(0, n - int(np.ceil(periods[-1])))
    last = tail_start + int(np.argmax(cumscore[tail_start:]))
    beats = [last]
    while backlink[beats[-1]] >= 0:
        beats.append(int(backlink[beats[-1]]))
    return np.asarray(beats[::-1], dtype=int)


def _viterbi(scores: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, float]:
    """Best state path through ``scores`` (steps, states) with transition costs ``trans``
    (from, to) subtracted; returns (path, its total score)."""
    acc = scores[0].copy()
    back = np.zeros(scores.shape, dtype=int)
    states = np.arange(scores.shape[1])
    for w in range(1, scores.shape[0]):
        tot = acc[:, None] - trans
        back[w] = np.argmax(tot, axis=0)
        acc = tot[back[w], states] + scores[w]
    path = np.zeros(scores.shape[0], dtype=int)
    path[-1] = int(np.argmax(acc))
    for w in range(scores.shape[0] - 1, 0, -1):
        path[w - 1] = back[w, path[w]]
    return path, float(acc.max())


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


def _refine(local: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Sub-frame beat positions (frames, float): parabolic interpolation of the local score peak."""
    out = frames.astype(np.float64)
    n = local.shape[0]
    for i, f in enumerate(frames):
        if 1 <= f < n - 1:
            a, b, c = local[f - 1], local[f], local[f + 1]
            denom = a - 2 * b + c
            if denom < 0 and b >= a and b >= c:
                out[i] = f + float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return out


def _kick_snare(stems: Mapping[str, StemFeatures], n_frames: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The drum stems' kick-band and snare-band onset envelopes (each unit std), or None."""
    kick = np.zeros(n_frames)
    snare = np.zeros(n_frames)
    found = False
    for stem in stems.values():
        if stem.role != "drums" or not _is_audible(stem):
            continue
        active = _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
        kick += _normalise(_fit_length(stem.curves.get("onset_low", stem.curves["onset"]), n_frames), active)
        snare += _normalise(_fit_length(stem.curves.get("onset_mid", stem.curves["onset"]), n_frames), active)
        found = True
    return (kick, snare) if found else None


def _beat_salience(stems: Mapping[str, StemFeatures], envelope: np.ndarray, n_frames: int,
                   period: float, drum_bands: tuple[str, ...] = ("onset_low", "onset_mid")) -> np.ndarray:
    """Where beats (not just onsets) are: the sum, each part at unit std, of the drums' kick- and
    snare-band onsets, the pitched stems' onsets, and their harmonic change
    (:func:`_harmonic_change`, ``period / 4`` frames either side); the whole onset envelope when
    none of these exists. Hats, shakers and rides mark the tatum, not the beat, and a syncopated
    hi-hat or snare can outnumber the hits on the beat; kick, bass notes and chord changes still
    mostly sit on it."""
    drums = np.zeros(n_frames)
    pitched = np.zeros(n_frames)
    for stem in stems.values():
        if not _is_audible(stem):
            continue
        active = _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
        if stem.role == "drums":
            for band in drum_bands:
                drums += _normalise(_fit_length(stem.curves.get(band, stem.curves["onset"]), n_frames), active)
        else:
            pitched += _normalise(_fit_length(stem.curves["onset"], n_frames), active)
    harmony = _harmonic_change(stems, n_frames, window=max(2, int(round(period / 4.0))))
    parts = [p / np.std(p) for p in (drums, pitched, harmony) if np.std(p) > 1e-9]
    return np.sum(parts, axis=0) if parts else envelope


def _harmonic_change(stems: Mapping[str, StemFeatures], n_frames: int, window: int) -> np.ndarray:
    """How much the pitched stems' harmony changes at each frame: 1 − cosine between the loudness-
    weighted chroma of the ``window`` frames before and after it. Chords and bass notes change on
    beats; hats, ghost notes and anticipated kicks do not carry a new chord. Zeros without
    pitched stems."""
    chroma = np.zeros((12, n_frames))
    for stem in stems.values():
        if stem.role == "drums" or not _is_audible(stem):
            continue
        chroma += _fit_length(stem.curves["chroma"], n_frames) * _fit_length(stem.curves["rms"], n_frames)[None, :]
    if not np.any(chroma > 0):
        return np.zeros(n_frames)
    cum = np.cumsum(np.pad(chroma, ((0, 0), (1, 0))), axis=1)
    idx = np.arange(n_frames)
    before = cum[:, idx] - cum[:, np.clip(idx - window, 0, n_frames)]
    after = cum[:, np.clip(idx + window, 0, n_frames)] - cum[:, idx]
    before /= np.linalg.norm(before, axis=0) + 1e-9
    after /= np.linalg.norm(after, axis=0) + 1e-9
    return 1.0 - np.sum(before * after, axis=0)


def _beat_presence(stems: Mapping[str, StemFeatures], beats_s: np.ndarray) -> float:
    """Share of the beats with an onset of any audible stem within max(70 ms, 1/8 beat)."""
    onsets = [stem.onsets_s for stem in stems.values() if _is_audible(stem)]
    on = np.sort(np.concatenate(onsets)) if onsets else np.zeros(0)
    if on.size == 0 or beats_s.shape[0] < 2:
        return 0.0
    tolerance_s = max(0.07, float(np.median(np.diff(beats_s))) / 8.0)
    i = np.clip(np.searchsorted(on, beats_s), 1, max(1, on.size - 1))
    dist = np.minimum(np.abs(on[np.minimum(i, on.size - 1)] - beats_s), np.abs(on[i - 1] - beats_s))
    return float(np.mean(dist <= tolerance_s))


def _drum_presence(stems: Mapping[str, StemFeatures], positions_s: np.ndarray,
                   tolerance_s: np.ndarray) -> np.ndarray | None:
    """1 where a drums-stem onset lies within ``tolerance_s`` of each position, else 0; None
    without an audible drums stem."""
    onsets = [stem.onsets_s for stem in stems.values() if stem.role == "drums" and _is_audible(stem)]
    if not onsets:
        return None
    on = np.sort(np.concatenate(onsets))
    if on.size == 0:
        return None
    i = np.clip(np.searchsorted(on, positions_s), 1, max(1, on.size - 1))
    dist = np.minimum(np.abs(on[np.minimum(i, on.size - 1)] - positions_s), np.abs(on[i - 1] - positions_s))
    return (dist <= tolerance_s).astype(np.float64)


def _correct_phase(stems: Mapping[str, StemFeatures], beats_s: np.ndarray, envelope: np.ndarray,
                   n_frames: int) -> np.ndarray:
    """Move stretches of the grid by a fraction of a beat where the evidence says they sit off it.

    The dynamic program follows the strongest chain of onsets one period apart. On a syncopated
    groove that can be the anticipations: the off-beat 8th, the "a" before each beat, a swung
    last 16th — and it can slip onto them part-way through a song when the pattern changes.

    The half-beat shift is decided first, song-wide, by kick/snare salience (``PHASE_SHIFT_MARGIN``).
    Then, for windows of ``PHASE_WINDOW_BEATS`` beats, the current phase and each 16th / triplet
    shift in ``PHASE_SHIFTS`` of the local beat length are scored by:

    - **presence**: the share of beats with a drums-stem onset on them. The beat is the position
      the drummer fills in (nearly) every bar; anticipations are louder but come and go. Measured
      on songs 10 and 13 the annotated beat has a drum onset 95 % / 79 % of the time, the
      anticipation the tracker locked onto 84 % / 60 %;
    - **salience** (:func:`_beat_salience`, kick/snare, pitched onsets, harmonic change) as a share
      of the window's best, weighted by ``PHASE_SALIENCE_WEIGHT``: it decides where presence ties
      (a backbeat song has drums on the off-beat 8th as often as on the beat) and without drums;
    - **the backbeat**: the snare band at the shifted beats, as a share of the window's best,
      weighted by ``PHASE_SNARE_WEIGHT`` (whatever kick and bass anticipate, the snare on 2 and 4
      sits on the beat);
    - **swing's grammar**: drum onsets 1/6 of a beat after a candidate count against it
      (``SWING_SHORT_WEIGHT``): swing is long–short, never short–long.

    A Viterbi path over windows × shifts pays ``PHASE_CHANGE_COST`` for each change of shift, so
    a song keeps one phase unless a stretch clearly says otherwise, and the current phase gets
    ``PHASE_STAY_BONUS`` (the tracker's own chain is evidence too).
    """
    n_beats = beats_s.shape[0]
    if n_beats < 8:
        return beats_s
    fr = _frame_rate_hz()
    ibi = np.diff(beats_s)
    ibi = np.append(ibi, ibi[-1])
    sal = _beat_salience(stems, envelope, n_frames, float(np.median(ibi)) * fr)
    half = max(1, int(round(float(np.median(ibi)) * fr / 12.0)))
    peak = scipy.ndimage.maximum_filter1d(sal, size=2 * half + 1, mode="constant")
    # The off-beat 8th: drums sit on it as often as on the beat (hats, a backbeat's ghost notes),
    # so presence cannot tell; the kick and snare can, song-wide, by PHASE_SHIFT_MARGIN. Decided first,
    # on the tracker's own grid, before presence moves stretches of it by a 16th or a triplet.
    def value(shift: float) -> float:
        at = np.round((beats_s + shift * ibi) * fr).astype(int)
        at = at[(at >= 0) & (at < n_frames)]
        return float(peak[at].mean()) if at.size else -np.inf

    base = value(0.0)
    if value(0.5) > base * (1.0 + PHASE_SHIFT_MARGIN) + 1e-9:
        beats_s = beats_s + 0.5 * ibi

    shifts = np.array((0.0,) + tuple(x for x in PHASE_SHIFTS if x != 0.5))
    positions = beats_s[None, :] + shifts[:, None] * ibi[None, :]  # (shifts, beats)
    idx = np.clip(np.round(positions * fr).astype(int), 0, n_frames - 1)
    salience = peak[idx]
    presence = _drum_presence(stems, positions.ravel(), np.minimum(PRESENCE_TOLERANCE_S, np.tile(ibi, shifts.size) / 8.0))
    presence = None if presence is None else presence.reshape(shifts.size, n_beats)
    # Swing is long–short: a swung groove's notes sit at 0, 1/3, 1/2, 5/6 (16ths) or 0, 2/3 (8ths)
    # of the beat, never 1/6 after it; a grid on the swung last 16th (5/6) has the beat's own
    # onset 1/6 after each of its beats. So onsets 1/6 of a beat after a candidate count against
    # it (straight 16ths sit 1/12 of a beat away from there and, tolerance aside, do not).
    short = _drum_presence(stems, (positions + ibi[None, :] / 6.0).ravel(),
                           np.minimum(SWING_TOLERANCE_S, np.tile(ibi, shifts.size) / 12.0))
    short = None if short is None else short.reshape(shifts.size, n_beats)

    # The backbeat: whatever the kick and bass anticipate, the snare (or clap) on 2 and 4 sits on
    # the beat in nearly every groove that has one.
    kick_snare = _kick_snare(stems, n_frames)
    snare = None
    if kick_snare is not None:
        snare = scipy.ndimage.maximum_filter1d(kick_snare[1], size=2 * half + 1, mode="constant")[idx]

    win = PHASE_WINDOW_BEATS
    starts = list(range(0, max(1, n_beats - win + 1), max(1, win // 2)))
    if starts[-1] + win < n_beats:
        starts.append(n_beats - win)
    emission = np.zeros((len(starts), shifts.size))
    for w, s0 in enumerate(starts):
        seg = slice(s0, s0 + win)
        sal_w = salience[:, seg].mean(axis=1)
        sal_w = sal_w / max(float(sal_w.max()), 1e-9)
        if presence is None:
            emission[w] = sal_w  # no drums: salience alone
        else:
            emission[w] = (presence[:, seg].mean(axis=1) + PHASE_SALIENCE_WEIGHT * sal_w
                           - SWING_SHORT_WEIGHT * short[:, seg].mean(axis=1))
            if snare is not None:
                sn = snare[:, seg].mean(axis=1)
                emission[w] += PHASE_SNARE_WEIGHT * sn / max(float(sn.max()), 1e-9)
        emission[w, 0] += PHASE_STAY_BONUS
    trans = PHASE_CHANGE_COST * (1.0 - np.eye(shifts.size))
    path, _ = _viterbi(emission, trans)
    if path.any():
        # each beat takes the shift of the window whose centre is nearest
        centres = np.asarray(starts, dtype=np.float64) + win / 2.0
        nearest = np.abs(np.arange(n_beats)[:, None] + 0.5 - centres[None, :]).argmin(axis=1)
        moved = beats_s + shifts[path[nearest]] * ibi
        # a change of shift between neighbours must not reorder or double beats
        keep = np.concatenate(([True], np.diff(moved) > 0.5 * ibi[:-1]))
        beats_s, ibi = moved[keep], ibi[keep]
    return beats_s


def _music_span(stems: Mapping[str, StemFeatures], n_frames: int) -> tuple[int, int] | None:
    """First and last frame where any stem is audible, or None for a silent song."""
    loud = np.zeros(n_frames, dtype=bool)
    for stem in stems.values():
        loud |= _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return None
    return int(idx[0]), int(idx[-1])


def _beat_sync_peak(env: np.ndarray, beat_frames: np.ndarray, half_width: int) -> np.ndarray:
    """Max of ``env`` within ±half_width frames of each beat, shape (n_beats,)."""
    n = env.shape[0]
    out = np.zeros(beat_frames.shape[0])
    for i, f in enumerate(beat_frames):
        lo, hi = max(0, f - half_width), min(n, f + half_width + 1)
        if hi > lo:
            out[i] = env[lo:hi].max()
    return out


def _accent_features(stems: Mapping[str, StemFeatures], beat_frames: np.ndarray, period: float,
                     n_frames: int) -> list[tuple[float, np.ndarray]]:
    """(weight, per-beat accent (n_beats,)) for downbeat detection; each accent z-scored.

    A bass-onset accent was tried and dropped: bass lines restart after rests anywhere in the bar
    (the shared 3/4 song's does so mid-bar), while the bass's pitch change on the downbeat is
    already in the harmonic-change accent.
    """
    half = max(1, int(round(period / 6.0)))
    n_beats = beat_frames.shape[0]
    kick, snare, loud = np.zeros(n_beats), np.zeros(n_beats), np.zeros(n_beats)
    chroma = np.zeros((12, n_frames))
    have_drums = have_chroma = False
    for stem in stems.values():
        if not _is_audible(stem):
            continue
        rms = _fit_length(stem.curves["rms"], n_frames)
        active = rms >= SILENCE_RMS
        if stem.role == "drums":
            for band, total in (("onset_low", kick), ("onset_mid", snare)):
                env = _normalise(_fit_length(stem.curves.get(band, stem.curves["onset"]), n_frames), active)
                total += _beat_sync_peak(env, beat_frames, half)
            have_drums = True
        else:
            chroma += _fit_length(stem.curves["chroma"], n_frames) * rms[None, :]
            have_chroma = True
        rms_db = librosa.amplitude_to_db(rms, ref=1.0, top_db=None)
        loud += _beat_sync_peak(np.maximum(rms_db, -80.0), beat_frames, half)
    feats: list[tuple[float, np.ndarray]] = [(ACCENT_WEIGHTS["loudness"], loud)]
    if have_drums:
        feats.append((ACCENT_WEIGHTS["kick"], kick))
        # Backbeat: the snare marks beats 2 and 4 (or 2 in 3/4), rarely the downbeat.
        feats.append((ACCENT_WEIGHTS["snare"], snare))
    if have_chroma and n_beats > 2:
        # Harmonic change into each beat: chords (and the bass note) tend to change on the
        # downbeat. sync[:, i] averages beat i to beat i+1.
        sync = librosa.util.sync(chroma, beat_frames, aggregate=np.mean, pad=False)
        unit = sync / (np.linalg.norm(sync, axis=0) + 1e-9)
        cos = np.sum(unit[:, 1:] * unit[:, :-1], axis=0)
        change = np.zeros(n_beats)
        change[1 : 1 + cos.shape[0]] = 1.0 - cos
        feats.append((ACCENT_WEIGHTS["harmony"], change))
    if n_beats > 2 * NOVELTY_HALF_BEATS + 1:
        feats.append((ACCENT_WEIGHTS["novelty"], _novelty(stems, beat_frames, n_frames)))
    out = []
    for weight, values in feats:
        std = float(np.std(values))
        if std > 1e-9:
            out.append((weight, (values - values.mean()) / std))
    return out


def _novelty(stems: Mapping[str, StemFeatures], beat_frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-beat novelty (Foote 2000): how much the music before a beat differs from the music after.

    Things change at bar lines: a fill gives way to the groove, a crash and a new chord land, a
    part enters or drops out. The beat-synchronous features (each pitched stem's loudness-weighted
    chroma, each drum stem's band onsets, every stem's level in dB; each row z-scored) give a
    cosine self-similarity matrix; a checkerboard kernel of ``NOVELTY_HALF_BEATS`` beats a side
    slides along its diagonal. Unlike the beat-to-beat harmonic change it also sees drums and
    parts entering, and it looks two beats either way, so one anticipated chord does not decide.
    Shape (n_beats,); 0 where the kernel does not fit.
    """
    rows = []
    for stem in stems.values():
        if not _is_audible(stem):
            continue
        rms = _fit_length(stem.curves["rms"], n_frames)
        if stem.role == "drums":
            rows += [_fit_length(stem.curves[b], n_frames)[None, :]
                     for b in ("onset_low", "onset_mid", "onset_high") if b in stem.curves]
        else:
            rows.append(_fit_length(stem.curves["chroma"], n_frames) * rms[None, :])
        rows.append(np.maximum(librosa.amplitude_to_db(rms, ref=1.0, top_db=None), -80.0)[None, :])
    n_beats = beat_frames.shape[0]
    novelty = np.zeros(n_beats)
    if not rows:
        return novelty
    # column j: beat j to beat j + 1
    sync = librosa.util.sync(np.concatenate(rows, axis=0), beat_frames, aggregate=np.mean, pad=False)
    sync = (sync - sync.mean(axis=1, keepdims=True)) / (sync.std(axis=1, keepdims=True) + 1e-9)
    unit = sync / (np.linalg.norm(sync, axis=0) + 1e-9)
    ssm = unit.T @ unit
    k = NOVELTY_HALF_BEATS
    for i in range(k, ssm.shape[0] - k + 1):
        before, after = ssm[i - k:i, i - k:i], ssm[i:i + k, i:i + k]
        novelty[i] = before.mean() + after.mean() - 2.0 * ssm[i - k:i, i:i + k].mean()
    return novelty


def _phase_scores(accents: list[tuple[float, np.ndarray]], n_beats: int, meter: int) -> np.ndarray:
    """Score of each bar phase φ ∈ [0, meter): weighted mean accent of beats b ≡ φ (mod meter)."""
    scores = np.zeros(meter)
    if n_beats < meter:
        return scores
    for weight, values in accents:
        for phase in range(meter):
            scores[phase] += weight * float(values[phase::meter].mean())
    return scores


def _choose_meter(comb: _Comb, period: float, accents: list[tuple[float, np.ndarray]],
                  n_beats: int) -> int:
    """3 or 4 beats per bar: bar-level periodicity (ACF) plus how much the best bar phase stands out.

    The ACF alone misses light accents (a click track whose downbeat is only 5 dB louder repeats at
    every beat almost equally); the phase contrast alone is noisy on short songs. Ties go to 4.
    """
    best_meter, best_score = 4, -np.inf
    for meter in (4, 3):
        bar = comb.get(meter * period)
        acf_part = 0.0 if bar is None else bar - METER_PENALTY * _meter_penalty(comb, period, meter)
        phases = _phase_scores(accents, n_beats, meter)
        contrast = float(phases.max()) if phases.size else 0.0
        score = acf_part + PHASE_CONTRAST_WEIGHT * contrast
        if meter == 3:
            score -= TRIPLE_METER_MARGIN
        if score > best_score + 1e-9:
            best_meter, best_score = meter, score
    return best_meter


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
        varying = _local_periods(envelope, kick_snare, period, meters)
        periods = period if varying is None else varying

    # --- beats ---------------------------------------------------------------------------------
    local = _local_score(envelope, float(np.median(periods)))
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
    if tempo_hint_bpm is None and _beat_presence(stems, beats_s) < MIN_BEAT_PRESENCE:
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
        meter = _choose_meter(comb, period, accents, frames.shape[0])
    division = _beat_division(comb, period) if tempo_hint_bpm is None or not beats_per_bar else 2
    if division == 3 and not _has_thirds(stems, beats_s):
        division = 2
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
        **_swing(stems, beats_s, division),
    )


def _beat_profile(stems: Mapping[str, StemFeatures], beats_s: np.ndarray) -> np.ndarray | None:
    """The rhythm section's onset envelope averaged over every beat, on ``SWING_BINS`` positions
    per beat (bin 0 = the beat). Drums and bass (all stems when there are neither; pads smear)."""
    fr = _frame_rate_hz()
    rhythm = [st for st in stems.values() if st.role in ("drums", "bass") and _is_audible(st)]
    rhythm = rhythm or [st for st in stems.values() if _is_audible(st)]
    if not rhythm or beats_s.shape[0] < 2:
        return None
    n = max(st.n_frames for st in rhythm)
    env = np.zeros(n)
    for st in rhythm:
        env += _normalise(_fit_length(st.curves["onset"], n), _fit_length(st.curves["rms"], n) >= SILENCE_RMS)
    grid = np.linspace(0.0, 1.0, SWING_BINS, endpoint=False)
    starts, ends = beats_s[:-1], beats_s[1:]
    times = starts[:, None] + grid[None, :] * (ends - starts)[:, None]  # (beats, bins)
    return np.interp(times * fr, np.arange(n), env).mean(axis=0)


def _has_thirds(stems: Mapping[str, StemFeatures], beats_s: np.ndarray) -> bool:
    """Whether the tracked beats have onsets on their thirds (both 1/3 and 2/3 of the beat).

    A compound beat (6/8, 12/8) is three 8ths: its thirds are played. The ACF test of
    :func:`_beat_division` can be fooled by a dense, reverberant 16th-note texture whose ACF is
    high at every short lag (Freedoom's E1M3 at 80 BPM: A(T/3) 0.21 > A(T/2) 0.10 with not one
    note on a third). Each third must stand ``THIRDS_MIN`` above the profile's median.
    """
    profile = _beat_profile(stems, beats_s)
    if profile is None:
        return True
    base = float(np.median(profile))
    width = max(1, SWING_BINS // 48)

    def at(x: float) -> float:
        k = int(round(x * SWING_BINS))
        return float(profile[k - width: k + width + 1].max()) - base

    return min(at(1.0 / 3.0), at(2.0 / 3.0)) > THIRDS_MIN


def _swing(stems: Mapping[str, StemFeatures], beats_s: np.ndarray, division: int) -> dict:
    """Swing of the off-beat 16th or 8th from the rhythm section's beat-synchronous onset profile.

    The drums' and bass's onset envelopes (all stems' when there are neither; pads smear) are
    averaged over every beat on a grid of ``SWING_BINS`` positions per beat. A straight off-beat
    16th peaks at 1/4 of the beat and the off-beat 8th at 1/2; swung, they move later (triplet
    swing: 1/3 and 2/3). Positions are measured from the on-beat peak (beat and onset times may
    disagree by a frame). The 16th level counts when its peak reaches ``SWING_MIN_SHARE`` of the
    off-beat 8th's peak (else the 8th level). Reported as the long : short ratio of the swung pair; straight
    (1.0, level 0) below ``SWING_MIN_RATIO`` or in compound meter (already triple).
    """
    straight = {"swing_ratio": 1.0, "swing_level": 0}
    if division != 2 or beats_s.shape[0] < 8:
        return straight
    profile = _beat_profile(stems, beats_s)
    if profile is None:
        return straight
    profile = np.roll(profile, SWING_BINS // 8)  # so the on-beat peak (−1/8 … +1/8) is not split
    pos = (np.arange(SWING_BINS) - SWING_BINS // 8) / SWING_BINS

    def peak(lo: float, hi: float) -> tuple[float, float]:
        sel = (pos > lo) & (pos < hi)
        k = int(np.argmax(np.where(sel, profile, -np.inf)))
        return float(pos[k]), float(profile[k])

    origin, top = peak(-0.1, 0.1)
    at8, height8 = peak(0.45, 0.75)
    at16, height16 = peak(0.2, 0.42)
    if top <= 0 or height8 <= 0:
        return straight
    if height16 >= SWING_MIN_SHARE * height8:
        level, at, half = 16, at16, 0.5
    else:
        level, at, half = 8, at8, 1.0
    ratio = (at - origin) / (half - (at - origin))
    if ratio >= SWING_MIN_RATIO:
        return {"swing_ratio": round(ratio, 3), "swing_level": level}
    return straight


def _downbeat_indices(accents: list[tuple[float, np.ndarray]], n_beats: int, meter: int,
                      phases: np.ndarray) -> np.ndarray:
    """Indices of the downbeats: the best bar phase, allowed to change where the music says so.

    One phase for the whole song breaks at a tempo change or a dropped or added beat (a bar of
    2/4 in a 4/4 song, a beat the tracker missed at a transition): every later bar is then off.
    A Viterbi path over the position in the bar (each beat advances it by one; a jump costs
    ``BAR_RESET_COST``) maximises the summed accent on downbeats, so the phase changes only
    where the accents agree for about two bars. Without accents: the global best phase.
    """
    if n_beats < meter or not accents:
        phase = int(np.argmax(phases)) if phases.size else 0
        return np.arange(phase, n_beats, meter)
    accent = np.sum([w * v for w, v in accents], axis=0)
    accent = accent / (np.std(accent) + 1e-9)
    # score[s] = best total with beat i at bar position s (0 = downbeat)
    score = np.where(np.arange(meter) == 0, accent[0], 0.0)
    back = np.zeros((n_beats, meter), dtype=int)
    for i in range(1, n_beats):
        advance = np.roll(score, 1)  # position s comes from s-1
        jump_from = int(np.argmax(score))
        jump = score[jump_from] - BAR_RESET_COST
        new = np.where(advance >= jump, advance, jump)
        back[i] = np.where(advance >= jump, (np.arange(meter) - 1) % meter, jump_from)
        score = new + np.where(np.arange(meter) == 0, accent[i], 0.0)
    pos = np.zeros(n_beats, dtype=int)
    pos[-1] = int(np.argmax(score))
    for i in range(n_beats - 1, 0, -1):
        pos[i - 1] = back[i, pos[i]]
    return np.flatnonzero(pos == 0)


def _beat_division(comb: _Comb, period: float) -> int:
    """3 (compound meter: 6/8, 12/8) when the beat divides into three rather than two, else 2.

    A 6/8 or 12/8 beat is a dotted quarter of three 8ths: its onsets recur a third of a beat
    apart and rarely half a beat apart. Swung 16ths also put onsets a third of a beat apart, but
    their straight 8ths keep A(T/2) up, so the beat must split into three clearly better
    (``COMPOUND_MARGIN``) than into two.
    """
    third, half = comb(period / 3.0), comb(period / 2.0)
    return 3 if third - max(half, 0.0) > COMPOUND_MARGIN else 2


def _compound_bar(phases4: np.ndarray) -> int:
    """12/8 (4 beats) or 6/8 (2 beats) for a compound meter found with 4-beat bars.

    In 6/8 beats 1 and 3 of a 4-beat bar are both downbeats, so beat 3 is accented nearly like
    beat 1, well above the weak beats 2 and 4; in 12/8 beat 3 is a weak beat too. 4 when beat 1
    stands out from beat 3 by more than ``COMPOUND_BAR_CONTRAST`` of how far it stands out from
    the weak beats.
    """
    if phases4.size != 4:
        return 4
    best = int(np.argmax(phases4))
    over_third = phases4[best] - phases4[(best + 2) % 4]
    over_weak = phases4[best] - max(phases4[(best + 1) % 4], phases4[(best + 3) % 4])
    return 4 if over_third > COMPOUND_BAR_CONTRAST * max(over_weak, 1e-9) else 2


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
