"""Render a project to a video file: analysis → FrameParams → engine → H.264/HEVC/ProRes + AAC.

The audio is the mixdown of the stems (gains, mutes, offsets) through a limiter, cut to exactly
the rendered range, so picture and sound line up frame for frame.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from bridge.analysis.types import SongAnalysis
from bridge.errors import RenderError
from bridge.export.job import (
    PREROLL_SECONDS,
    RenderJob,
    check_fades,
    engine_preroll_frames,
    fade_envelope,
    frame_range,
)
from bridge.jobs import CancelToken, ProgressCallback, no_progress
from bridge.project.schema import Project, RenderSettings, parse_fps
from bridge.project.store import format_option_errors, resolve_stem_path
from bridge.visuals.base import RenderContext, SectionLook

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)



def section_looks(project: Project, analysis: SongAnalysis, *, engine_name: str | None = None,
                  look: str | None = None) -> tuple[SectionLook, ...]:
    """The project's sections resolved to seconds; the detected sections when the project has none.

    For the shader engine (the project's, or ``engine_name``) each section without a look of its own
    gets one from the music (:func:`bridge.visuals.character.auto_section_looks`) unless the
    project sets one look for the song (``engine.look``). ``look`` (the render's ``--look``): that
    one look for every section."""
    from dataclasses import replace

    from bridge.mapping.sections import resolve_sections

    if project.sections:
        looks = resolve_sections(project.sections, analysis.beat_grid, duration_seconds=analysis.duration_seconds)
    else:
        looks = tuple(
            SectionLook(start_s=a, end_s=b, name=f"Section {i + 1}", seed=project.engine.seed + i)
            for i, (a, b) in enumerate(analysis.sections)
        )
    if look:
        return tuple(replace(s, look="") for s in looks)
    if (engine_name or project.engine.name).strip().lower() == "shader" and not project.engine.look:
        from bridge.visuals.character import auto_section_looks, default_look

        looks = auto_section_looks(looks, analysis, default_look(analysis))
    return looks


#: How much song a range export's mix starts before the samples it needs (the limiter's memory: see
#: :func:`bridge.export.mixdown.mix_stems_window`). When the limiter has not settled by then, the
#: mix starts at the song's start instead (one try: a longer window rarely settles where this did
#: not, since the limiter settles on its own peaks, and every try costs its decoding).
MIX_PREROLL_SECONDS = 2.0
#: How far past a range's end its mix runs (the limiter's 5-ms look-ahead hears the song go on).
MIX_TAIL_SECONDS = 0.1


def mix_project_audio(project: Project, project_dir: Path, *, sample_rate: int, duration_seconds: float,
                      exact_from_seconds: float = 0.0,
                      stems_out: dict[str, np.ndarray] | None = None,
                      problems: list[str] | None = None, solo: Collection[str] = (),
                      skip: Collection[str] = ()) -> np.ndarray:
    """Mixdown of the un-muted stems, float32 (2, samples), covering song time [0, duration).

    Each stem goes through its effect chain (``fx``) after being placed in the song, and the sum
    through the master chain (``master_fx``) before the limiter; a slot that cannot run is bypassed
    and reported through ``problems`` (and the log).

    ``exact_from_seconds``: only the samples from this song time on are needed (a range export):
    each stem is read from a little before it (:data:`MIX_PREROLL_SECONDS`) and the samples before
    that are left silent; from ``exact_from_seconds`` on they are the whole song's mix, bit for bit.
    Where that cannot be shown (the limiter has not settled in the window), and with any effect
    chain in the mix (a plug-in's state has no bound), the mix starts at the song's start, as for 0.

    ``stems_out``: when given, filled with each un-muted stem as placed in the song, after its
    effects (mono float32, before gain) — the shader engine's audio inputs read them.
    ``solo``: stem names; when any is given, only those stems sound (a muted stem stays muted, as in
    a DAW's solo-in-place). ``skip``: stem names left out (e.g. files gone missing: playback goes on
    without them)."""
    from bridge.analysis.project import fx_tempo_bpm
    from bridge.export.mixdown import mix_stems, mix_stems_window
    from bridge.plugins.chain import active_slots, apply_chain

    report = problems if problems is not None else []
    total = int(round(duration_seconds * sample_rate))
    playing = [s for s in project.stems
               if not (s.muted or s.name in skip or (solo and s.name not in solo))]
    if not playing:
        return np.zeros((2, total), dtype=np.float32)
    exact = min(total, max(0, int(round(exact_from_seconds * sample_rate))))
    stateful = bool(active_slots(project.master_fx)) or any(active_slots(s.fx) for s in playing)
    tempo_bpm = fx_tempo_bpm(project, project_dir) if stateful else None  # for tempo-synced effects
    gains = [s.gain_db for s in playing]
    start = 0 if stateful else max(0, exact - int(round(MIX_PREROLL_SECONDS * sample_rate)))
    placed = [_placed_stem(s, project_dir, sample_rate=sample_rate, start=start, stop=total) for s in playing]
    if start > 0:
        mix = mix_stems_window(placed, gains_db=gains, sample_rate=sample_rate, exact_from=exact - start)
        if mix is None:  # the limiter's state at the window's start matters: mix from the song's start
            start = 0
            placed = [_placed_stem(s, project_dir, sample_rate=sample_rate, start=0, stop=total) for s in playing]
    if stateful:
        for i, s in enumerate(playing):
            if active_slots(s.fx):
                chained = apply_chain(placed[i], sample_rate, s.fx, tempo_bpm=tempo_bpm, where=f"stem {s.name!r}")
                placed[i] = chained.audio
                report.extend(chained.problems)

    def master(mix: np.ndarray) -> np.ndarray:
        chained = apply_chain(mix, sample_rate, project.master_fx, tempo_bpm=tempo_bpm, where="master")
        report.extend(chained.problems)
        return chained.audio

    if start == 0:
        mix = mix_stems(placed, gains_db=gains, sample_rate=sample_rate,
                        master_fx=master if active_slots(project.master_fx) else None)
    if stems_out is not None:
        for s, stem in zip(playing, placed, strict=True):
            stems_out[s.name] = _from_song_start(stem.mean(axis=0).astype(np.float32), start, total)
    return _from_song_start(mix, start, total)


def _placed_stem(stem, project_dir: Path, *, sample_rate: int, start: int, stop: int) -> np.ndarray:
    """Song samples ``start … stop`` of ``stem`` (its offset applied, silence where it does not play),
    decoding only that span of its file."""
    from bridge.stems.load import load_audio, place_in_song

    path = resolve_stem_path(stem.path, project_dir)
    if start == 0:
        audio = load_audio(path, sample_rate=sample_rate, allow_silent=True)
        return place_in_song(audio, offset_seconds=stem.offset_seconds, sample_rate=sample_rate, total_samples=stop)
    offset = int(round(stem.offset_seconds * sample_rate))  # as place_in_song: file sample 0 plays here
    first = max(0, start - offset)  # the file's first sample heard in the window
    audio = load_audio(path, sample_rate=sample_rate, allow_silent=True, start_sample=first,
                       stop_sample=max(first, stop - offset))
    out = np.zeros((audio.shape[0], stop - start), dtype=np.float32)
    at = first + offset - start
    n = min(audio.shape[1], out.shape[1] - at)
    if n > 0:
        out[:, at:at + n] = audio[:, :n]
    return out


def _from_song_start(audio: np.ndarray, start: int, total: int) -> np.ndarray:
    """``audio`` (song samples ``start … total``) in an array from song sample 0, silent before."""
    if start == 0:
        return audio
    out = np.zeros((*audio.shape[:-1], total), dtype=np.float32)  # untouched pages cost no memory
    out[..., start:] = audio
    return out


#: The render settings by the `stembridge render` option that sets them (the export dialog's
#: fields carry the same words), for error messages.
RENDER_OPTIONS = {"width": "--width", "height": "--height", "fps": "--fps", "crf": "--crf",
                  "video_bitrate": "--bitrate", "video_codec": "--codec", "encoder": "--encoder",
                  "encode_speed": "--encode-speed"}


def render_settings(project: Project, *, width: int | None = None, height: int | None = None,
                    fps: object | None = None, preset: str | None = None, codec: str | None = None,
                    crf: int | None = None, bitrate: int | None = None,
                    encoder: str | None = None, encode_speed: str | None = None) -> RenderSettings:
    """The project's render settings with the overrides applied: a preset first, then explicit values.
    A bit rate replaces the CRF and a CRF the bit rate; ProRes drops both (a fixed data rate).
    ``encoder``: auto / hardware / an FFmpeg encoder name (:func:`bridge.export.presets.pick_encoder`).
    ``encode_speed``: draft / balanced / small (:data:`bridge.export.presets.ENCODE_SPEED_PRESETS`)."""
    from bridge.export.presets import (
        check_encoder_choice,
        encode_speed_preset,
        get_codec,
        get_preset,
    )

    base = project.render
    if preset is not None:
        p = get_preset(preset)
        width, height = width or p.width, height or p.height
        fps = fps if fps is not None else p.fps
    video_codec = get_codec(codec).key if codec is not None else base.video_codec
    if bitrate is not None and crf is not None:
        raise RenderError("give a CRF or a bit rate, not both")
    if bitrate is not None:
        quality = {"crf": None, "video_bitrate": int(bitrate)}
    elif crf is not None:
        quality = {"crf": int(crf), "video_bitrate": None}
    else:
        quality = {"crf": base.crf, "video_bitrate": base.video_bitrate}
    if encode_speed is not None:
        encode_speed_preset(encode_speed)  # a RenderError naming the value and the choices
    if not get_codec(video_codec).has_quality:
        if bitrate is not None:
            raise RenderError(f"{get_codec(video_codec).label} has a fixed data rate (set by its profile); "
                              "export it without a bit rate, or pick H.264 / HEVC for a bit rate.")
        quality = {"crf": None, "video_bitrate": None}
    try:
        return RenderSettings(
            width=base.width if width is None else width, height=base.height if height is None else height,
            fps=str(parse_fps(fps)) if fps is not None else base.fps,
            sample_rate=base.sample_rate, video_codec=video_codec,
            encoder=check_encoder_choice(encoder if encoder is not None else base.encoder),
            encode_speed=encode_speed if encode_speed is not None else base.encode_speed, **quality,
        )
    except ValidationError as e:
        raise RenderError(format_option_errors(e, names=RENDER_OPTIONS)) from None
    except ValueError as e:
        raise RenderError(str(e)) from None


def find_section(looks: tuple[SectionLook, ...], section: str | int) -> SectionLook:
    """A section by its 1-based number (1, "2") or its name (case-insensitive); RenderError listing them."""
    text = str(section).strip()
    if text.isdigit() and 1 <= int(text) <= len(looks):
        return looks[int(text) - 1]
    for look in looks:
        if look.name.strip().lower() == text.lower():
            return look
    names = ", ".join(f"{i + 1} ({look.name})" for i, look in enumerate(looks)) or "none"
    raise RenderError(f"section {section!r} is not in the song; its sections are {names}")


def render_project(
    project: Project,
    project_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    analysis: SongAnalysis | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: object | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    engine_name: str | None = None,
    model: str | None = None,
    look: str | None = None,
    preset: str | None = None,
    codec: str | None = None,
    crf: int | None = None,
    bitrate: int | None = None,
    encoder: str | None = None,
    encode_speed: str | None = None,
    section: str | int | None = None,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    resume: bool = True,
    segments: int | None = None,
    ray_address: str | None = None,
    ray_cpus_per_task: int = 1,
    log_message: Callable[[str], None] = lambda message: None,
) -> Path:
    """Render ``project`` to ``out_path`` (MP4/MOV). Overrides replace the project's render settings.

    ``preset``: where the video goes (:data:`bridge.export.presets.PRESETS`: 1080p30, 1080p60, 4k30,
    vertical-1080, square-1080) — its size and fps, unless ``width``/``height``/``fps`` are given.
    ``codec`` (h264 / hevc / prores), ``crf`` or ``bitrate`` (b/s): the encoding; ``encoder``: which
    encoder makes it (auto: software first; hardware: the GPU's; or a name such as h264_nvenc — see
    :func:`bridge.export.presets.pick_encoder`); ``encode_speed``: how hard x264 / x265 work — draft
    (fastest, biggest file), balanced (the default) or small (smallest file, slowest). ``section``: render
    one section (its 1-based number or name) instead of ``start_s``/``end_s``. ``fade_in_s`` /
    ``fade_out_s``: picture from/to black and sound from/to silence (linear), at the range's edges.

    The video is rendered in segments kept in a work folder beside the output
    (``.OUT.mp4.parts/``, see :mod:`bridge.export.segments`): a killed or cancelled export run
    again with the same project and settings continues from its last finished segment (and says so
    through ``log_message``, e.g. "resuming at 2:41"); ``resume=False`` starts over. ``segments``:
    how many pieces (default: about one per 10 s). ``ray_address`` ("auto" or a cluster's
    HOST:PORT): render the segments in parallel on a Ray cluster (:mod:`bridge.export.cluster`),
    each task with ``ray_cpus_per_task`` CPUs (and as many threads).

    Raises RenderError / AudioError / Cancelled; on any failure no file is left at ``out_path``
    (an existing file there is kept).
    """
    cancel = cancel or CancelToken()
    if not ray_address:  # on this machine: an encoder that does not open here is said before any work
        from bridge.export.presets import pick_encoder

        wanted = render_settings(project, width=width, height=height, fps=fps, preset=preset, codec=codec,
                                 crf=crf, bitrate=bitrate, encoder=encoder, encode_speed=encode_speed)
        pick_encoder(wanted.video_codec, wanted.width, wanted.height, wanted.fps_fraction, prefer=wanted.encoder)
    job = prepare_render(project, project_dir, analysis=analysis, width=width, height=height, fps=fps,
                         start_s=start_s, end_s=end_s, engine_name=engine_name, model=model, look=look,
                         preset=preset, codec=codec, crf=crf, bitrate=bitrate, encoder=encoder,
                         encode_speed=encode_speed, section=section,
                         fade_in_s=fade_in_s, fade_out_s=fade_out_s, cancel=cancel)
    if ray_address:
        from bridge.export.cluster import render_on_ray

        return render_on_ray(job, out_path, address=ray_address, n_segments=segments, resume=resume,
                             progress=progress, cancel=cancel, log_message=log_message,
                             cpus_per_task=ray_cpus_per_task)
    from bridge.export.segments import render_segmented

    return render_segmented(job, out_path, n_segments=segments, resume=resume, progress=progress,
                            cancel=cancel, log_message=log_message)


def prepare_render(
    project: Project,
    project_dir: str | os.PathLike[str],
    *,
    analysis: SongAnalysis | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: object | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    engine_name: str | None = None,
    model: str | None = None,
    look: str | None = None,
    preset: str | None = None,
    codec: str | None = None,
    crf: int | None = None,
    bitrate: int | None = None,
    encoder: str | None = None,
    encode_speed: str | None = None,
    section: str | int | None = None,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    cancel: CancelToken | None = None,
) -> RenderJob:
    """Resolve the project into a :class:`RenderJob` (analysis, mappings, engine settings, audio)."""
    from bridge.analysis.project import analyze_project
    from bridge.mapping import evaluate_mappings
    from bridge.visuals import ENGINE_NAMES, get_engine

    project_dir = Path(project_dir)
    cancel = cancel or CancelToken()
    settings = render_settings(project, width=width, height=height, fps=fps, preset=preset, codec=codec,
                               crf=crf, bitrate=bitrate, encoder=encoder, encode_speed=encode_speed)
    if analysis is None:
        analysis = analyze_project(project, project_dir, cancel=cancel)
    rate = settings.fps_fraction
    key = (engine_name or project.engine.name).strip().lower()
    looks = section_looks(project, analysis, engine_name=key, look=look)
    if section is not None:
        if start_s is not None or end_s is not None:
            raise RenderError("give a section or a start/end time, not both")
        picked = find_section(looks, section)
        start_s, end_s = picked.start_s, picked.end_s
    rng = frame_range(analysis.duration_seconds, rate, start_s=start_s, end_s=end_s)
    fade_in_s, fade_out_s = check_fades(fade_in_s, fade_out_s, rng.duration_seconds)
    preroll = min(rng.start_frame, int(PREROLL_SECONDS * rate))
    if key == "shader":
        from bridge.mapping.sections import feedback_transition_preroll
        from bridge.visuals.shader import HIT_WINDOW_S

        # a range that starts inside a melt renders it from its start (the melt is feedback)
        preroll = min(rng.start_frame, max(preroll, feedback_transition_preroll(
            looks, rate, rng.start_frame, history_s=HIT_WINDOW_S)))
    params = evaluate_mappings(
        project.mappings, analysis, looks, fps=rate, start_frame=rng.start_frame - preroll,
        n_frames=rng.n_frames + preroll, stem_roles={s.name: s.role for s in project.stems},
    )
    # only what the producer set: schema defaults (e.g. guidance 1.0) must not override an engine's own
    engine_settings = project.engine.model_dump(exclude={"name"}, exclude_unset=True)
    if model:
        engine_settings["model"] = model
    from bridge.visuals.character import effective_engine, with_song_settings

    run_seed, song_settings = effective_engine(project.engine, analysis, key)  # every song its own look
    engine_settings = with_song_settings(engine_settings, song_settings)
    if look:
        engine_settings["look"] = look
    if key == "lcm":
        from bridge.mapping.sections import keyframe_frames

        engine_settings["tempo_bpm"] = float(analysis.beat_grid.tempo_bpm)
        if analysis.beat_grid.beats_s.size:
            # Keyframes on the song's own beats (tempo changes followed) and section starts.
            total = rng.start_frame + rng.n_frames
            engine_settings["keyframes"] = keyframe_frames(
                analysis.beat_grid, fps=rate, n_frames=total,
                every_beats=project.engine.keyframe_every_beats,
                section_starts_s=[sec.start_s for sec in looks]).tolist()
    if key not in ENGINE_NAMES:
        get_engine(key)  # raises the RenderError naming the engines
    stem_audio: dict[str, np.ndarray] | None = {} if key == "shader" else None
    # Only the song the export plays and draws is mixed: from the first prepared frame (pre-roll
    # included), less the longest audio window a shader reads, to a little past the range's end
    # (the limiter looks ahead), never past the end a whole-song export mixes to. The samples are
    # then the whole song's mix, bit for bit (see mix_project_audio).
    song = frame_range(analysis.duration_seconds, rate)
    mix_end_s = min(song.start_seconds + song.duration_seconds,
                    rng.start_seconds + rng.duration_seconds + MIX_TAIL_SECONDS)
    exact_from_s = rng.start_seconds
    if stem_audio is not None:  # the shader's audio inputs: the window before each prepared frame
        from bridge.visuals.shader_passes import AUDIO_FFT_SIZE, AUDIO_SAMPLES

        exact_from_s = float(params.start_frame / rate) - max(AUDIO_FFT_SIZE, AUDIO_SAMPLES) / settings.sample_rate
    mix = mix_project_audio(project, project_dir, sample_rate=settings.sample_rate, duration_seconds=mix_end_s,
                            exact_from_seconds=max(0.0, exact_from_s), stems_out=stem_audio)
    audio_inputs = {}
    if stem_audio is not None:  # the shader engine's audio / audioFFT inputs: the mix and each stem
        audio_inputs = {"mix": mix.mean(axis=0).astype(np.float32), **stem_audio}
    grid = analysis.beat_grid
    context = RenderContext(width=settings.width, height=settings.height, fps=rate, sections=looks,
                            seed=run_seed, mode="export",
                            beats_s=tuple(float(b) for b in grid.beats_s),
                            downbeats_s=tuple(float(b) for b in grid.downbeats_s),
                            audio=audio_inputs, audio_sample_rate=settings.sample_rate)
    a0 = int(round(rng.start_seconds * settings.sample_rate))
    audio = mix[:, a0:a0 + int(round(rng.duration_seconds * settings.sample_rate))]
    if fade_in_s or fade_out_s:
        audio = audio * fade_envelope(audio.shape[1], settings.sample_rate, fade_in_s, fade_out_s)
    cuts = {int(np.floor(sec.start_s * float(rate) + 1e-6)) for sec in looks}  # a section's first frame
    cuts.update(int(round(b * rate)) for b in grid.downbeats_s)
    cuts.update(int(k) for k in engine_settings.get("keyframes", ()) or ())
    end_frame = rng.start_frame + rng.n_frames
    return RenderJob(engine_key=key, engine_settings=engine_settings, context=context, params=params,
                     range=rng, settings=settings, audio=np.ascontiguousarray(audio),
                     preroll_frames=engine_preroll_frames(key, engine_settings, looks, rate),
                     boundaries=tuple(sorted(c for c in cuts if rng.start_frame < c < end_frame)),
                     fade_in_s=fade_in_s, fade_out_s=fade_out_s)

