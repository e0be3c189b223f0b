"""Analyse a whole project: every stem's features (in parallel, cached per stem) + the beat grid
and sections (cached per song). Reopening an unchanged project decodes no audio at all.

Layer: :mod:`bridge.analysis` sits above project and plugins (it reads the project and runs each
stem's effect chain before analysing it) and below mapping (see :mod:`bridge.vocab`)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bridge.analysis import types as T
from bridge.analysis.cache import AnalysisCache, code_version, make_key
from bridge.errors import AnalysisError, ProjectError
from bridge.jobs import CancelToken, ProgressCallback, no_progress

# Defined beside the effect chains (plugins layer, below this one); re-exported from here.
from bridge.plugins.chain import chain_tempo_bpm
from bridge.project.relink import record_stem_files, require_stem_files
from bridge.project.schema import Project, StemSpec
from bridge.project.store import cache_dir, resolve_stem_path
from bridge.stems.load import file_digest, load_audio, place_in_song, probe_audio

log = logging.getLogger(__name__)


def stem_paths(project: Project, project_dir: Path) -> dict[str, Path]:
    return {s.name: resolve_stem_path(s.path, project_dir) for s in project.stems}


def song_duration_seconds(project: Project, project_dir: Path, *, skip: Collection[str] = ()) -> float:
    """Song length: where the last stem ends (offsets applied), from the file headers only.
    Stems named in ``skip`` are left out (0.0 when that leaves none)."""
    if not project.stems:
        raise ProjectError("The project has no stems. Add some with `stembridge new DIR --stems STEMS_DIR`.")
    ends = [s.offset_seconds + probe_audio(path).duration_seconds
            for s, path in zip(project.stems, stem_paths(project, project_dir).values(), strict=True)
            if s.name not in skip]
    if not ends:
        return 0.0
    duration = max(ends)
    if duration <= 0:
        raise ProjectError("All stems end before song time 0 (check their offset_seconds).")
    return duration


def _stem_key(spec: StemSpec, digest: str, version: str, chain: list | None = None) -> str:
    # A stem without an active effect chain keeps the key it had before chains existed.
    extra = [chain] if chain else []
    return make_key("stem-features", digest, spec.offset_seconds, version,
                    T.ANALYSIS_SAMPLE_RATE, T.ANALYSIS_HOP, T.ANALYSIS_N_FFT, *extra)


def _tempo_synced(slots) -> bool:
    from bridge.plugins.builtins import TEMPO_SYNCED

    return any(not s.bypass and any((s.plugin, k) in TEMPO_SYNCED for k in s.parameters) for s in slots)


def fx_tempo_bpm(project: Project, project_dir: str | os.PathLike[str], *,
                 cancel: CancelToken | None = None) -> float | None:
    """The quarter-note tempo tempo-synced effects (``Delay.delay_beats``) get: the project's own (the DAW's or
    the producer's, :func:`chain_tempo_bpm`), else the tempo detected from the song with those
    effects bypassed — an echo must not decide the tempo it is timed by. None when no active slot
    is tempo-synced and the project sets no tempo (nothing needs one).

    The detection is the project's analysis with those slots bypassed (cached like any analysis:
    usually the one from before the delay was added)."""
    explicit = chain_tempo_bpm(project)
    if explicit or not (_tempo_synced(project.master_fx) or any(_tempo_synced(s.fx) for s in project.stems)):
        return explicit

    def off(slots):
        return [s.model_copy(update={"bypass": True}) if _tempo_synced([s]) else s for s in slots]

    raw = project.model_copy(update={"master_fx": off(project.master_fx),
                                     "stems": [s.model_copy(update={"fx": off(s.fx)}) for s in project.stems]})
    return analyze_project(raw, project_dir, cancel=cancel).beat_grid.quarter_tempo_bpm  # as chain_tempo_bpm


def stem_chain_state(project: Project, spec: StemSpec, tempo_bpm: float | None = None) -> list:
    """What of the stem's effect chain decides its analysis (empty: no active effect); ``tempo_bpm``:
    what its tempo-synced effects get (:func:`fx_tempo_bpm`)."""
    from bridge.plugins.chain import chain_fingerprint

    fingerprint = chain_fingerprint(spec.fx)
    if not fingerprint:
        return []
    return [fingerprint, project.sample_rate, tempo_bpm if _tempo_synced(spec.fx) else chain_tempo_bpm(project)]


def stem_mono(spec: StemSpec, path: Path, *, fx_sample_rate: int = 44100,
              tempo_bpm: float | None = None) -> np.ndarray:
    """The stem as analysis hears it: MONO float32 (samples,) at ANALYSIS_SAMPLE_RATE in song
    time, through its effect chain when it has an active one (:func:`processed_stem`)."""
    from bridge.plugins.chain import active_slots

    if active_slots(spec.fx):
        return processed_stem(spec, path, fx_sample_rate=fx_sample_rate, tempo_bpm=tempo_bpm)
    audio = load_audio(path, sample_rate=T.ANALYSIS_SAMPLE_RATE, mono=True)
    end_s = spec.offset_seconds + audio.shape[1] / T.ANALYSIS_SAMPLE_RATE
    placed = place_in_song(audio, offset_seconds=spec.offset_seconds, sample_rate=T.ANALYSIS_SAMPLE_RATE,
                           total_samples=max(1, int(round(end_s * T.ANALYSIS_SAMPLE_RATE))))
    return placed[0]


def _analyse_one(spec: StemSpec, path: Path, cancel: CancelToken, *, fx_sample_rate: int = 44100,
                 tempo_bpm: float | None = None, keep: dict[str, np.ndarray] | None = None) -> T.StemFeatures:
    """The stem's features; with ``keep``, its decoded mono audio is kept there for the mix."""
    from bridge.analysis.pipeline import features_for_stem

    cancel.raise_if_cancelled("the analysis")
    audio = stem_mono(spec, path, fx_sample_rate=fx_sample_rate, tempo_bpm=tempo_bpm)
    if keep is not None:
        keep[spec.name] = audio
    return features_for_stem(spec.name, spec.role, audio, cancel=cancel)


def processed_stem(spec: StemSpec, path: Path, *, fx_sample_rate: int, tempo_bpm: float | None) -> np.ndarray:
    """The stem as analysis hears it through its effect chain: MONO float32 (samples,) at
    ANALYSIS_SAMPLE_RATE, in song time. The chain runs on the stem's own channels at the project
    rate (as in the export: a filter's cutoff or a compressor's timing must not depend on the
    analysis rate), then the result is folded to mono and resampled."""
    import math

    from scipy.signal import resample_poly

    from bridge.plugins.chain import apply_chain

    audio = load_audio(path, sample_rate=fx_sample_rate)
    end_s = spec.offset_seconds + audio.shape[1] / fx_sample_rate
    placed = place_in_song(audio, offset_seconds=spec.offset_seconds, sample_rate=fx_sample_rate,
                           total_samples=max(1, int(round(end_s * fx_sample_rate))))
    wet = apply_chain(placed, fx_sample_rate, spec.fx, tempo_bpm=tempo_bpm, where=f"stem {spec.name!r}").audio
    mono = wet.mean(axis=0)
    if fx_sample_rate != T.ANALYSIS_SAMPLE_RATE:
        g = math.gcd(fx_sample_rate, T.ANALYSIS_SAMPLE_RATE)
        mono = resample_poly(mono, T.ANALYSIS_SAMPLE_RATE // g, fx_sample_rate // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _analyse_mix(project: Project, paths: dict[str, Path], cancel: CancelToken,
                 decoded: dict[str, np.ndarray] | None = None, *, tempo_bpm: float | None = None) -> T.StemFeatures | None:
    """Features of the mix as heard: the unmuted stems, placed at their offsets and through their
    effect chains, summed with their gains. The visuals answer what the producer hears; a stem's own onset curve is normalised to
    itself, so a quiet shaker and a loud guitar would otherwise count the same."""
    from bridge.analysis.pipeline import features_for_stem

    mix: np.ndarray | None = None
    for s in project.stems:
        if s.muted:
            continue
        cancel.raise_if_cancelled("the analysis")
        audio = (decoded or {}).get(s.name)
        if audio is None:  # not decoded by this analysis (its features came from the cache)
            audio = stem_mono(s, paths[s.name], fx_sample_rate=project.sample_rate, tempo_bpm=tempo_bpm)
        placed = audio * np.float32(10.0 ** (s.gain_db / 20.0))
        if mix is None:
            mix = placed.astype(np.float32)
        else:
            if placed.shape[0] > mix.shape[0]:
                mix = np.pad(mix, (0, placed.shape[0] - mix.shape[0]))
            mix[: placed.shape[0]] += placed
    if mix is None:
        return None
    return features_for_stem("mix", "mix", mix, cancel=cancel, fine=True)


def _kit_features(project: Project, paths: dict[str, Path], keys: dict[str, str], version: str,
                  cache: AnalysisCache, cancel: CancelToken, decoded: dict[str, np.ndarray] | None,
                  *, use_cache: bool, tempo_bpm: float | None) -> T.StemFeatures | None:
    """Features of the drum kit as one bus when the drums come as several stems (Kick, Snare,
    Hats …; see :func:`bridge.analysis.pipeline.kit_audio`), each at its gain; cached by the drum
    stems' keys and gains. None with fewer than two drum stems."""
    from bridge.analysis.pipeline import KIT_STEM_NAME, features_for_stem, kit_audio

    drums = [s for s in project.stems if s.role == "drums"]
    if len(drums) < 2:
        return None
    key = make_key("kit-features", sorted((keys[s.name], s.gain_db) for s in drums), version)
    hit = cache.load_stem(key, name=KIT_STEM_NAME, role="drums") if use_cache else None
    if hit is not None:
        return hit
    parts = []
    for s in drums:
        cancel.raise_if_cancelled("the analysis")
        audio = (decoded or {}).get(s.name)
        if audio is None:
            audio = stem_mono(s, paths[s.name], fx_sample_rate=project.sample_rate, tempo_bpm=tempo_bpm)
        parts.append((s.name, "drums", audio * np.float32(10.0 ** (s.gain_db / 20.0))))
    kit = features_for_stem(KIT_STEM_NAME, "drums", kit_audio(parts), cancel=cancel)
    cache.save_stem(key, kit)
    return kit


def _percussive_features(project: Project, paths: dict[str, Path], keys: dict[str, str], version: str,
                         cache: AnalysisCache, cancel: CancelToken, decoded: dict[str, np.ndarray] | None,
                         *, use_cache: bool, tempo_bpm: float | None) -> T.StemFeatures | None:
    """Features of a lone non-drum stem's percussive part (a project of one mix; see
    :func:`bridge.analysis.pipeline.percussive_part`); cached by the stem's key. None otherwise."""
    from bridge.analysis.pipeline import (
        features_for_stem,
        hears_percussive_part,
        percussive_name,
        percussive_part,
    )

    if not hears_percussive_part([s.role for s in project.stems]):
        return None
    s = project.stems[0]
    key = make_key("percussive-part", keys[s.name], version)
    hit = cache.load_stem(key, name=percussive_name(s.name), role="drums") if use_cache else None
    if hit is not None:
        return hit
    cancel.raise_if_cancelled("the analysis")
    audio = (decoded or {}).get(s.name)
    if audio is None:
        audio = stem_mono(s, paths[s.name], fx_sample_rate=project.sample_rate, tempo_bpm=tempo_bpm)
    part = features_for_stem(percussive_name(s.name), "drums", percussive_part([(s.name, s.role, audio)], cancel=cancel),
                             cancel=cancel)
    cache.save_stem(key, part)
    return part


def _pad_to(features: T.StemFeatures, n_frames: int) -> T.StemFeatures:
    """Stems end at different times; consumers get every curve on the song's full grid."""
    curves = {}
    for k, v in features.curves.items():
        extra = n_frames - v.shape[-1]
        if extra > 0:
            pad = [(0, 0)] * (v.ndim - 1) + [(0, extra)]
            v = np.pad(v, pad)
        curves[k] = v[..., :n_frames]
    return dataclasses.replace(features, curves=curves)


def beat_grid_for(project: Project, project_dir: Path, stems: dict[str, T.StemFeatures],
                  duration_seconds: float) -> T.BeatGrid:
    """The beat grid from the project's tempo settings: the DAW's tempo when given, else detected.

    ``stems``: the features the tracker hears (:func:`bridge.analysis.pipeline.rhythm_features`: a
    kit exported track by track as one drum bus)."""
    from bridge.analysis import beats

    tempo = project.tempo
    if tempo.source == "constant":
        return beats.beat_grid_from_tempo(
            tempo.tempo_bpm, duration_seconds=duration_seconds, beats_per_bar=tempo.beats_per_bar or 4,
            first_downbeat_seconds=tempo.first_downbeat_seconds,
        )
    if tempo.source == "midi_file":
        from bridge.analysis.tempo_map import beat_grid_from_midi

        return beat_grid_from_midi(resolve_stem_path(tempo.midi_file, project_dir),
                                   duration_seconds=duration_seconds,
                                   offset_seconds=tempo.first_downbeat_seconds)
    if project.rhythm.is_set:  # the producer's corrections (stembridge analyze --tempo …, the tempo panel)
        from bridge.analysis.corrections import corrected_beat_grid

        learned = None
        if project.rhythm.beat_model:  # the optional learned tracker (stembridge[beatthis])
            from bridge.analysis.learned_beats import SAMPLE_RATE, project_mix, track_beats_learned

            def learned() -> T.BeatGrid:
                mix = project_mix(project, project_dir, duration_seconds=duration_seconds)
                return track_beats_learned(mix, sample_rate=SAMPLE_RATE, duration_seconds=duration_seconds,
                                           checkpoint=project.rhythm.beat_model)
        return corrected_beat_grid(project.rhythm, stems, duration_seconds=duration_seconds, learned=learned)
    return beats.track_beats(stems, duration_seconds=duration_seconds, tempo_hint_bpm=tempo.tempo_bpm,
                             beats_per_bar=tempo.beats_per_bar)


def analyze_project(
    project: Project,
    project_dir: str | os.PathLike[str],
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    max_workers: int = 2,
    use_cache: bool = True,
) -> T.SongAnalysis:
    """Features for every stem + beat grid + sections. Cached; raises AudioError/AnalysisError."""
    from bridge.analysis.pipeline import analyze_song

    project_dir = Path(project_dir)
    require_stem_files(project, project_dir)  # every missing file named at once, with the fix
    cancel = cancel or CancelToken()
    cache = AnalysisCache(cache_dir(project_dir) / "analysis")
    version = code_version("features")
    song_version = code_version("song")
    paths = stem_paths(project, project_dir)
    duration = song_duration_seconds(project, project_dir)
    n_frames = int(np.ceil(duration * T.ANALYSIS_SAMPLE_RATE / T.ANALYSIS_HOP)) + 1

    tempo_fx = fx_tempo_bpm(project, project_dir, cancel=cancel)
    digests = {s.name: file_digest(paths[s.name]) for s in project.stems}
    record_stem_files(project_dir, {name: (paths[name], digest) for name, digest in digests.items()})
    keys = {s.name: _stem_key(s, digests[s.name], version, stem_chain_state(project, s, tempo_fx))
            for s in project.stems}
    features: dict[str, T.StemFeatures] = {}
    todo: list[StemSpec] = []
    for s in project.stems:
        hit = cache.load_stem(keys[s.name], name=s.name, role=s.role) if use_cache else None
        if hit is not None:
            features[s.name] = hit
        else:
            todo.append(s)
    # The mix as heard (mapping sources mix.*): cached by the stems' keys, gains and mutes. When it
    # must be computed, the stems analysed below keep their decoded audio for it (one decode each).
    mix: T.StemFeatures | None = None
    mix_key = make_key("mix-features", sorted((keys[s.name], s.gain_db, s.muted) for s in project.stems), version)
    need_mix = len(project.stems) > 1
    if need_mix and use_cache:
        mix = cache.load_stem(mix_key, name="mix", role="mix")
        need_mix = mix is None
    from bridge.analysis.pipeline import hears_percussive_part

    # The lone stem of a one-mix project keeps its audio too: the rhythm analysis separates its
    # percussive part (one decode, not two).
    lone_mix = hears_percussive_part([s.role for s in project.stems])
    decoded: dict[str, np.ndarray] | None = {} if need_mix or lone_mix else None
    total = len(project.stems) + 1
    done = len(features)
    progress(done, total, "analysing stems")
    if todo:
        log.info("analysing %d stem(s): %s", len(todo), ", ".join(s.name for s in todo))
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(todo)))) as pool:
            futures = {s.name: pool.submit(_analyse_one, s, paths[s.name], cancel,
                                           fx_sample_rate=project.sample_rate,
                                           tempo_bpm=tempo_fx,
                                           keep=decoded) for s in todo}
            try:
                for s in todo:
                    cancel.raise_if_cancelled("the analysis")
                    f = futures[s.name].result()
                    cache.save_stem(keys[s.name], f)
                    features[s.name] = f
                    done += 1
                    progress(done, total, f"analysed {s.name}")
            except BaseException:
                for fut in futures.values():
                    fut.cancel()
                raise
    cancel.raise_if_cancelled("the analysis")
    features = {s.name: _pad_to(features[s.name], n_frames) for s in project.stems}

    drum_gains = sorted(s.gain_db for s in project.stems if s.role == "drums")
    song_key = make_key("song", sorted((s.name, s.role, keys[s.name]) for s in project.stems),
                        project.tempo.model_dump(mode="json"), round(duration, 6), song_version,
                        *([project.rhythm.model_dump(mode="json")] if project.rhythm.is_set else []),
                        *([drum_gains] if len(drum_gains) > 1 else []))  # they weigh the kit's bus
    cached_song = cache.load_song(song_key) if use_cache else None
    if cached_song is not None:
        grid, sections = cached_song
    else:
        from bridge.analysis.pipeline import rhythm_features

        kit = percussive = None
        if project.tempo.source not in ("constant", "midi_file"):
            if sum(s.role == "drums" for s in project.stems) > 1:
                progress(done, total, "hearing the drum stems as one kit")
            kit = _kit_features(project, paths, keys, version, cache, cancel, decoded, use_cache=use_cache,
                                tempo_bpm=tempo_fx)
            if lone_mix:
                progress(done, total, "hearing the drums in the mix")
            percussive = _percussive_features(project, paths, keys, version, cache, cancel, decoded,
                                              use_cache=use_cache, tempo_bpm=tempo_fx)
        heard = rhythm_features(features, None if kit is None else _pad_to(kit, n_frames),
                                None if percussive is None else _pad_to(percussive, n_frames))
        song = analyze_song(features, duration_seconds=duration,
                            beat_grid=beat_grid_for(project, project_dir, heard, duration))
        grid, sections = song.beat_grid, song.sections
        cache.save_song(song_key, grid, sections)
    if need_mix:
        progress(total - 1, total, "analysing the mix")
        mix = _analyse_mix(project, paths, cancel, decoded, tempo_bpm=tempo_fx)
        if mix is not None:
            cache.save_stem(mix_key, mix)
    decoded = None  # the stems' audio is not kept past this point
    mix = None if mix is None else _pad_to(mix, n_frames)
    progress(total, total, "analysis done")
    if not np.isfinite(grid.tempo_bpm) or grid.tempo_bpm <= 0:
        raise AnalysisError(f"Beat tracking gave tempo {grid.tempo_bpm}; set the tempo in the project (tempo.source='constant').")
    return T.SongAnalysis(duration_seconds=duration, beat_grid=grid, sections=list(sections), stems=features,
                          mix=mix)
