"""Analyse a song's stems: per-stem features in parallel, then beats and sections for the song.

Per-stem features depend only on that stem's audio (:func:`features_for_stem`), so a cache can
key them by the stem's content hash; the song-level part (:func:`analyze_song`) depends on all
stems' features plus the tempo/meter hints and is cached separately.

Parallelism: a thread pool. The heavy parts (the STFT, the mel/chroma matrix products, the
spectral sums) run in numpy/scipy/BLAS code that releases the GIL, so two threads use both cores
of a 2-core machine; a process pool measured slower there (benchmarks/analysis_speed.py
``--compare-pools``) because each worker process pays librosa's import and numba warm-up and the
audio has to be pickled across.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import numpy as np

from bridge.analysis.beats import track_beats
from bridge.analysis.features import compute_stem_features
from bridge.analysis.sections import detect_sections
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE, BeatGrid, SongAnalysis, StemFeatures
from bridge.errors import AnalysisError
from bridge.jobs import CancelToken, ProgressCallback, no_progress


def features_for_stem(
    name: str,
    role: str,
    audio: np.ndarray,
    *,
    sample_rate: int = ANALYSIS_SAMPLE_RATE,
    cancel: CancelToken | None = None,
    fine: bool = False,
) -> StemFeatures:
    """Features of one stem (independent of every other stem: cache it by the audio's hash).

    ``audio``: MONO float32 (samples,) at ANALYSIS_SAMPLE_RATE; ``fine``: also the short-window
    onset curve the visuals follow (the mix's). Raises AnalysisError for unusable audio and
    Cancelled if ``cancel`` is already set.
    """
    if cancel is not None:
        cancel.raise_if_cancelled(f"analysis of stem '{name}'")
    return compute_stem_features(audio, name=name, role=role, sample_rate=sample_rate, fine=fine)


#: Name of the drum-kit bus :func:`rhythm_features` puts in place of a kit exported track by track.
KIT_STEM_NAME = "drum kit"


def kit_audio(stems: Sequence[tuple[str, str, np.ndarray]]) -> np.ndarray | None:
    """The sum of the drum-role stems' mono audio when there are two or more (a kit exported track
    by track: Kick, Snare, Hats, Overheads …), else None. Shorter stems are zero-padded.

    Why the rhythm analysis needs the kit as one signal: onset flux is measured on a log (dB)
    spectrogram relative to each stem's own level, which makes every stem's envelope independent
    of its loudness. For a whole kit that is what we want; for its pieces it is not: a hi-hat track's
    kick band holds only its faint low rumble, yet its flux there counts as much as the kick's, and
    the kick track's click reaches the hat band. Synthetic band songs with the kit exported as
    Kick/Snare/Hats/Crash tracks (``benchmarks/rhythm_accuracy.py --kit-tracks``): 22 of 28 met every
    goal heard piece by piece (half, double or triple tempo: rock at 72 and 200 BPM, half-time at
    85, 12/8 at 60), 28 of 28 as one kit, as with the kit on one track.
    """
    drums = [np.asarray(audio, dtype=np.float32).ravel() for _, role, audio in stems if role == "drums"]
    if len(drums) < 2:
        return None
    out = np.zeros(max(a.shape[0] for a in drums), dtype=np.float32)
    for a in drums:
        out[: a.shape[0]] += a
    return out


#: How much louder than the harmonic part a bin must be to go to the percussive part in
#: :func:`percussive_part` (librosa's HPSS ``margin``): 1 splits every bin between the two, 3
#: keeps bins that are neither (reverb, a pad's attack) out of the drums.
PERCUSSIVE_MARGIN = 3.0
#: The separation's STFT and median filter (librosa's defaults), and the length of the blocks it
#: runs in (see :func:`percussive_part`).
PERCUSSIVE_N_FFT = 2048
PERCUSSIVE_HOP = 512
PERCUSSIVE_KERNEL = 31
PERCUSSIVE_BLOCK_S = 30.0


def hears_percussive_part(roles: Sequence[str]) -> bool:
    """Whether the rhythm analysis hears a percussive part (:func:`percussive_part`) beside stems of
    these roles: a project of one stem that is not the drums."""
    return len(roles) == 1 and roles[0] != "drums"


def percussive_part(stems: Sequence[tuple[str, str, np.ndarray]], *,
                    cancel: CancelToken | None = None) -> np.ndarray | None:
    """The percussive part (mono audio) of a project's one stem when it is not the drums (a whole
    mix, or one bounce of everything), else None: stems already give the drums apart.

    Why the rhythm analysis needs it: the tracker tells the beat from the "and" by where the drums
    hit (a drums stem's kick and snare bands, which beats have a drum on them, the snare on 2 and
    4). In a mix the drums share every band with the rest, so that evidence was missing. Harmonic /
    percussive separation by median filtering (librosa's HPSS, Fitzgerald 2010) gives a stand-in
    for the drums stem, heard beside the mix itself. Dev mixes (``benchmarks/rhythm_accuracy.py
    --mix-only``; Freedoom, LMMS, Hydrogen, shared and synthetic): 71 → 88 of 145 items meet every
    goal, mean beat F 0.77 → 0.80, AMLt 0.87 → 0.92, no set lost any. Tried on the same items: the
    harmonic part in place of the mix (76: beats on the "and" fell further, 13 → 6, but the bar
    lines went astray on the LMMS and Hydrogen mixes), and margin 1 with it (73). Only the rhythm
    analysis hears the part; the mix's features that drive the visuals are unchanged.
    """
    if not hears_percussive_part([role for _, role, _ in stems]):
        return None
    audio = np.asarray(stems[0][2], dtype=np.float32).ravel()
    # In blocks with context either side, so that memory stays bounded on a long file (the whole
    # STFT of an hour is gigabytes) and a cancel lands within one block. Written here, not taken
    # from librosa, which separates a signal in one piece. Blocks start on the STFT hop and the
    # context covers the median filter's reach (PERCUSSIVE_KERNEL frames) plus a frame either side,
    # so the result equals the separation of the whole signal (tested).
    reach = (PERCUSSIVE_KERNEL // 2 + 2) * PERCUSSIVE_HOP + PERCUSSIVE_N_FFT
    block = max(reach, int(PERCUSSIVE_BLOCK_S * ANALYSIS_SAMPLE_RATE) // PERCUSSIVE_HOP * PERCUSSIVE_HOP)
    context = -(-reach // PERCUSSIVE_HOP) * PERCUSSIVE_HOP
    out = np.zeros_like(audio)
    for start in range(0, audio.shape[0], block):
        if cancel is not None:
            cancel.raise_if_cancelled("the separation of the drums from the mix")
        lo, stop = max(0, start - context), min(audio.shape[0], start + block)
        part = _percussive(audio[lo : min(audio.shape[0], stop + context)])
        out[start:stop] = part[start - lo : stop - lo]
    return out


def _percussive(y: np.ndarray) -> np.ndarray:
    """``librosa.effects.percussive(y, margin=PERCUSSIVE_MARGIN, kernel_size=PERCUSSIVE_KERNEL)``
    (tested equal), with its two median filters taken by bottleneck's running median: librosa's
    (scipy.ndimage) re-sorts every window, 11 of the 13 s a 4-minute mix took; the running median
    keeps the window sorted and gives the same values in a tenth of the time."""
    import librosa

    stft = librosa.stft(y, n_fft=PERCUSSIVE_N_FFT, hop_length=PERCUSSIVE_HOP)
    mag = np.abs(stft)
    # The two filters side by side: bottleneck lets go of the GIL while it runs.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bridge-hpss") as pool:
        steady = pool.submit(_centred_median, mag, PERCUSSIVE_KERNEL, axis=1)  # steady in time
        percussive = _centred_median(mag, PERCUSSIVE_KERNEL, axis=0)  # broad in frequency
        harmonic = steady.result()
    mask = librosa.util.softmask(percussive, harmonic * PERCUSSIVE_MARGIN, power=2.0)
    return librosa.istft(stft * mask, n_fft=PERCUSSIVE_N_FFT, hop_length=PERCUSSIVE_HOP,
                         length=y.shape[0], dtype=np.float32)


def _centred_median(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``scipy.ndimage.median_filter`` of odd ``size`` along ``axis``, edges mirrored ("reflect")."""
    import bottleneck

    half = size // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (half, half)
    # bottleneck's window ends at each output; on the mirrored array it ends `half` past it.
    trailing = bottleneck.move_median(np.pad(values, pad, mode="symmetric"), size, axis=axis)
    return np.take(trailing, np.arange(size - 1, trailing.shape[axis]), axis=axis)


def percussive_name(name: str) -> str:
    """Name of stem ``name``'s percussive part (:func:`percussive_part`)."""
    return f"{name} (percussive part)"


def rhythm_features(features: Mapping[str, StemFeatures], kit: StemFeatures | None,
                    percussive: StemFeatures | None = None) -> dict[str, StemFeatures]:
    """The stems as the beat tracker should hear them: the drum-role stems replaced by the ``kit``
    bus (:func:`kit_audio`) when there is one; a lone stem joined by its ``percussive`` part as the
    drums (:func:`percussive_part`); otherwise ``features`` unchanged."""
    out = dict(features)
    if percussive is not None and len(features) == 1:
        out[percussive.name] = percussive
    if kit is None:
        return out
    out = {name: f for name, f in out.items() if f.role != "drums"}
    out[KIT_STEM_NAME if KIT_STEM_NAME not in out else f"{KIT_STEM_NAME} (bus)"] = kit
    return out


def analyze_song(
    features: Mapping[str, StemFeatures],
    *,
    duration_seconds: float,
    tempo_hint_bpm: float | None = None,
    beats_per_bar: int | None = None,
    beat_grid: BeatGrid | None = None,
    min_section_bars: int = 4,
) -> SongAnalysis:
    """The song-level part: beats (unless ``beat_grid`` is given) and sections from stem features."""
    _check_duration(duration_seconds)
    if beat_grid is None:
        beat_grid = track_beats(features, duration_seconds=duration_seconds,
                                tempo_hint_bpm=tempo_hint_bpm, beats_per_bar=beats_per_bar)
    sections = detect_sections(features, beat_grid, duration_seconds=duration_seconds,
                               min_bars=min_section_bars)
    return SongAnalysis(duration_seconds=float(duration_seconds), beat_grid=beat_grid,
                        sections=sections, stems=dict(features))


def analyze_stems(
    stems: Sequence[tuple[str, str, np.ndarray]],
    *,
    duration_seconds: float,
    tempo_hint_bpm: float | None = None,
    beats_per_bar: int | None = None,
    beat_grid: BeatGrid | None = None,
    max_workers: int = 2,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> SongAnalysis:
    """Analyse every stem, then the song's beats and sections.

    Parameters
    ----------
    stems : sequence of (name, role, audio)
        ``audio`` is MONO float32 (samples,) at ANALYSIS_SAMPLE_RATE, time 0 = song start. Names
        must be unique.
    duration_seconds : float
        Song length in seconds.
    tempo_hint_bpm, beats_per_bar : optional
        The project's / DAW's tempo and meter, passed to :func:`bridge.analysis.beats.track_beats`.
    beat_grid : BeatGrid, optional
        A known grid (the project's tempo map): beat tracking is skipped.
    max_workers : int
        Threads for the per-stem features (≥ 1).
    progress : callable, optional
        ``progress(done, total, label)``; total = number of stems + 2 (beats, sections).
    cancel : CancelToken, optional
        Checked before each stem starts and after each finishes; raises Cancelled.

    Returns
    -------
    SongAnalysis
        ``stems`` maps each stem name to its StemFeatures.

    Raises
    ------
    AnalysisError
        No stems, duplicate names, bad audio (see compute_stem_features), bad hints.
    Cancelled
        ``cancel`` was set.
    """
    _check_duration(duration_seconds)
    if not stems:
        raise AnalysisError(
            "No stems to analyse; add at least one audio file to the project's stems."
        )
    names = [name for name, _, _ in stems]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnalysisError(
            f"Stem names must be unique, but {dupes} appear more than once; rename the stems."
        )
    if not isinstance(max_workers, (int, np.integer)) or max_workers < 1:
        raise AnalysisError(f"max_workers={max_workers!r} must be a whole number ≥ 1.")
    report = progress or no_progress
    total = len(stems) + 2
    done = 0
    report(done, total, "analysing stems")

    features: dict[str, StemFeatures] = {}
    if max_workers == 1 or len(stems) == 1:
        for name, role, audio in stems:
            features[name] = features_for_stem(name, role, audio, cancel=cancel)
            done += 1
            report(done, total, f"features: {name}")
    else:
        with ThreadPoolExecutor(max_workers=int(max_workers),
                                thread_name_prefix="bridge-analysis") as pool:
            pending: dict[Future[StemFeatures], str] = {
                pool.submit(features_for_stem, name, role, audio, cancel=cancel): name
                for name, role, audio in stems
            }
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        name = pending.pop(future)
                        features[name] = future.result()  # re-raises the worker's error
                        done += 1
                        report(done, total, f"features: {name}")
                    if cancel is not None and cancel.cancelled:
                        break
            finally:
                for future in pending:
                    future.cancel()  # stems not started yet; running ones finish and are dropped
        if cancel is not None:
            cancel.raise_if_cancelled("the stem analysis")
    features = {name: features[name] for name in names}  # the caller's order

    if cancel is not None:
        cancel.raise_if_cancelled("the stem analysis")
    if beat_grid is None:
        kit = kit_audio(stems)
        kit_features = None if kit is None else features_for_stem(KIT_STEM_NAME, "drums", kit, cancel=cancel)
        part = percussive_part(stems, cancel=cancel)
        part_features = None if part is None else features_for_stem(percussive_name(names[0]), "drums", part,
                                                                    cancel=cancel)
        beat_grid = track_beats(rhythm_features(features, kit_features, part_features),
                                duration_seconds=duration_seconds,
                                tempo_hint_bpm=tempo_hint_bpm, beats_per_bar=beats_per_bar)
    done += 1
    report(done, total, "beats")
    if cancel is not None:
        cancel.raise_if_cancelled("the stem analysis")
    result = analyze_song(features, duration_seconds=duration_seconds, beat_grid=beat_grid)
    done += 1
    report(done, total, "sections")
    return result


def _check_duration(duration_seconds: float) -> None:
    if not np.isfinite(duration_seconds) or duration_seconds <= 0:
        raise AnalysisError(
            f"duration_seconds={duration_seconds!r} is not a positive song length; pass the "
            f"length in seconds (the longest stem, including its offset)."
        )
