"""The ``stembridge`` command line.

Every subcommand is a thin layer over bridge functions: parse arguments, show progress (tqdm),
print results. User errors (BridgeError) print one clear message and exit with status 2; Ctrl-C
exits with 130 and leaves no half-written file.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__
from bridge.cli_support import run_command, tqdm_progress
from bridge.errors import BridgeError

log = logging.getLogger("stembridge")


def _tempo(grid) -> str:
    """"80.00 BPM (midi)": the tapped beats and where they come from; where a beat is not a quarter
    (6/8, 7/8) the quarter-note tempo a DAW shows follows, as in the app's readout:
    "80.00 BPM (midi; quarter = 120.00)". A song whose tempo changes shows its span:
    "80.00–160.00 BPM (detected)"."""
    from bridge.analysis.corrections import tempo_span_text

    extra = f"; quarter = {grid.quarter_tempo_bpm:.2f}" if grid.quarters_per_beat != 1.0 else ""
    return f"{tempo_span_text(grid)} ({grid.source}{extra})"


def other_readings(grid) -> list[dict]:
    """The detected tempo's other readings (``BeatGrid.other_readings``) with the ``analyze`` options
    that take each: ×2 / ÷2 keep the detected beats, a 3:2 relative is a set tempo."""
    from bridge.analysis.corrections import octave_steps, tempo_span_text

    out = []
    for factor in grid.other_readings:
        bpm = float(grid.tempo_bpm * factor)
        option = {1: "--double-tempo", -1: "--half-tempo"}.get(octave_steps(factor), f"--tempo {bpm:.2f}")
        out.append({"tempo_bpm": round(bpm, 3), "factor": round(float(factor), 6), "option": option,
                    "text": tempo_span_text(grid, factor)})
    return out


def _print_other_readings(grid, *, file=None, command: str = "") -> None:
    """"other readings of the beat: 168.06 BPM (--double-tempo); …": which octave of a beat one counts
    is partly convention, so say what else the tempo could be and how to take it."""
    readings = other_readings(grid)
    if readings:
        print("  other readings of the beat: "
              + "; ".join(f"{r['text']} ({command}{r['option']})" for r in readings), file=file)


def _meter(grid) -> str:
    swing = f", swung {grid.swing_level}ths {grid.swing_ratio:.1f}:1" if grid.swing_level else ""
    return f"{grid.meter_label} ({grid.beats_per_bar} beats/bar{swing})"


# --- commands ----------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.demo.project import make_demo

    out = Path(args.out)
    with tqdm_progress("rendering", "frame", quiet=args.quiet) as progress:
        video = make_demo(out, width=args.width, height=args.height, fps=args.fps, progress=progress,
                          log=(lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr)))
    print(video)
    return 0


def _parse_roles(items: Sequence[str]) -> dict[str, str]:
    roles = {}
    for item in items:
        if "=" not in item:
            raise BridgeError(f"--role {item!r} must be FILE_OR_NAME=ROLE, e.g. --role '03 Vox.wav=vocals'")
        k, v = item.rsplit("=", 1)
        roles[k.strip()] = v.strip()
    return roles


#: The fields `stembridge new` sets, by the option that sets them (for its error messages).
NEW_OPTIONS = {"tempo_bpm": "--tempo", "beats_per_bar": "--beats-per-bar", "width": "--width",
               "height": "--height", "fps": "--fps"}


def cmd_new(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bridge.project.create import new_project
    from bridge.project.schema import RenderSettings, TempoSettings
    from bridge.project.store import format_option_errors

    fields: dict[str, object] = {}
    try:
        if args.tempo is not None:  # --tempo 0 is refused, not taken as 'detect it'
            fields["tempo"] = TempoSettings(source="constant", tempo_bpm=args.tempo,
                                            beats_per_bar=args.beats_per_bar)
        elif args.tempo_map:
            fields["tempo"] = TempoSettings(source="midi_file", midi_file=str(Path(args.tempo_map).resolve()),
                                            midi_file_external=True)  # the user named it
        render = {k: v for k, v in (("width", args.width), ("height", args.height), ("fps", args.fps))
                  if v is not None}
        if render:
            fields["render"] = RenderSettings(**render)
        if getattr(args, "engine", None):
            from bridge.project.schema import EngineSettings

            fields["engine"] = EngineSettings(name=args.engine)
    except ValidationError as e:
        raise BridgeError(format_option_errors(e, names=NEW_OPTIONS)) from None
    except ValueError as e:
        raise BridgeError(str(e)) from None
    if args.mix is not None and args.stems is not None:
        raise BridgeError("stembridge new takes --stems STEMS_DIR or --mix MIX_FILE, not both.")
    if args.mix is not None:
        result = _new_from_mix(args, fields)
    elif args.stems is None:
        raise BridgeError(
            "stembridge new needs --stems STEMS_DIR (the folder your DAW exported the stems into) "
            "or --mix MIX_FILE (a full mix to split into stems with Demucs)."
        )
    else:
        result = new_project(args.project_dir, args.stems, name=args.name, roles=_parse_roles(args.role),
                             overwrite=args.force, **fields)
    for msg in result.skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    for s in result.project.stems:
        print(f"  {s.name:<24} {s.role:<8} {s.path}", file=sys.stderr)
    if not args.no_analyze:
        _analyse_and_store_sections(result.project_dir, quiet=args.quiet)
    print(result.project_dir / "stembridge.json")
    return 0


def _new_from_mix(args: argparse.Namespace, fields: dict[str, object]):
    """`new --mix`: split the mix into PROJECT_DIR/stems, then create the project (the same call as
    the app's File ▸ New project from a mix; nothing is left behind when it fails)."""
    from bridge.project.create import new_project_from_mix
    from bridge.separation.cli import separation_kwargs

    with tqdm_progress("separating", "segment", quiet=args.quiet) as progress:
        return new_project_from_mix(args.project_dir, args.mix, name=args.name, overwrite=args.force,
                                    separation=separation_kwargs(args), progress=progress,
                                    roles=_parse_roles(args.role), **fields)


def _analyse_and_store_sections(project_dir: Path, *, quiet: bool):
    from bridge.analysis.project import analyze_project
    from bridge.project import load_project, save_project
    from bridge.project.create import sections_from_analysis

    project, project_dir = load_project(project_dir)
    with tqdm_progress("analysing", "stem", quiet=quiet) as progress:
        analysis = analyze_project(project, project_dir, progress=progress)
    if not project.sections:
        from bridge.visuals.character import section_transitions

        transitions = section_transitions(analysis, list(analysis.sections))
        project = project.model_copy(update={"sections": sections_from_analysis(analysis.sections,
                                                                                transitions=transitions)})
        save_project(project, project_dir)
    grid = analysis.beat_grid
    if not quiet:
        print(f"  {_tempo(grid)}, {_meter(grid)}, {len(grid.downbeats_s)} bars, "
              f"{len(analysis.sections)} section{'' if len(analysis.sections) == 1 else 's'}, "
              f"{analysis.duration_seconds:.1f} s", file=sys.stderr)
        _print_other_readings(grid, file=sys.stderr, command=f"stembridge analyze {shlex.quote(str(project_dir))} ")
    return project, analysis


def cmd_analyze(args: argparse.Namespace) -> int:
    from bridge.analysis.project import analyze_project, stem_paths
    from bridge.analysis.rhythm_cli import apply_rhythm_arguments
    from bridge.project import load_project
    from bridge.stems import probe_audio

    apply_rhythm_arguments(args)  # --tempo/--meter/--downbeat/…: saved in the project first
    project, project_dir = load_project(args.project_dir)
    with tqdm_progress("analysing", "stem", quiet=args.quiet or args.json) as progress:
        analysis = analyze_project(project, project_dir, progress=progress, use_cache=not args.no_cache)
    grid = analysis.beat_grid
    if args.json:
        paths = stem_paths(project, project_dir)
        stems = []
        for s in project.stems:
            info = probe_audio(paths[s.name])
            stems.append({
                "name": s.name, "role": s.role, "path": str(paths[s.name]),
                "duration_seconds": round(info.duration_seconds, 6), "sample_rate": info.sample_rate,
                "offset_seconds": s.offset_seconds,
                "onsets": [round(float(t), 4) for t in analysis.stems[s.name].onsets_s],
            })
        span = grid.tempo_span
        out = {
            "tempo_bpm": round(float(grid.tempo_bpm), 3),
            # [slowest, fastest] where the tempo changes (the one tempo_bpm lies between), else null
            "tempo_span_bpm": None if span is None else [round(x, 3) for x in span],
            "quarter_tempo_bpm": round(grid.quarter_tempo_bpm, 3),
            "beats_per_bar": grid.beats_per_bar,
            "time_signature": grid.meter_label, "swing_ratio": grid.swing_ratio, "swing_level": grid.swing_level,
            "tempo_source": grid.source, "other_readings": other_readings(grid),
            "duration_seconds": round(analysis.duration_seconds, 6),
            "beats": [round(float(t), 4) for t in grid.beats_s],
            "downbeats": [round(float(t), 4) for t in grid.downbeats_s],
            "sections": [{"start": round(a, 4), "end": round(b, 4)} for a, b in analysis.sections],
            "stems": stems,
        }
        out["rhythm_correction"] = project.rhythm.model_dump(mode="json") if project.rhythm.is_set else None
        print(json.dumps(out))
    else:
        print(f"{project.name}: {analysis.duration_seconds:.2f} s, {_tempo(grid)}, "
              f"{_meter(grid)}, {len(grid.beats_s)} beats, {len(grid.downbeats_s)} bars")
        _print_other_readings(grid)
        for i, (a, b) in enumerate(analysis.sections):
            print(f"  section {i + 1}: {a:7.2f} – {b:7.2f} s")
        for s in project.stems:
            f = analysis.stems[s.name]
            print(f"  {s.name:<24} {s.role:<8} {len(f.onsets_s):5d} onsets")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from bridge.analysis.project import analyze_project
    from bridge.export.presets import get_codec
    from bridge.export.render import render_project
    from bridge.project import load_project

    project, project_dir = load_project(args.project_dir)
    codec = get_codec(args.codec or project.render.video_codec)
    out = Path(args.output) if args.output else project_dir / f"render{codec.default_suffix}"
    with tqdm_progress("analysing", "stem", quiet=args.quiet) as progress:
        analysis = analyze_project(project, project_dir, progress=progress)
    song_s = analysis.duration_seconds
    if args.end is not None and args.end > song_s and (args.start or 0.0) < song_s:
        # the range is cut to the song: say so, the video is shorter than asked
        print(f"stembridge: --end {args.end:g} is past the song's end; rendering to its end, {song_s:.2f} s",
              file=sys.stderr)
    with tqdm_progress("rendering", "frame", quiet=args.quiet) as progress:
        path = render_project(project, project_dir, out, analysis=analysis, width=args.width, height=args.height,
                              fps=args.fps, start_s=args.start, end_s=args.end, engine_name=args.engine,
                              model=args.model, look=args.look, preset=args.preset, codec=args.codec,
                              crf=args.crf, bitrate=_bitrate(args.bitrate), encoder=args.encoder,
                              encode_speed=args.encode_speed, section=args.section,
                              fade_in_s=args.fade_in, fade_out_s=args.fade_out, progress=progress,
                              segments=args.segments, ray_address=args.ray,
                              ray_cpus_per_task=args.ray_cpus, resume=not args.no_resume,
                              log_message=lambda m: print(m, file=sys.stderr))
    print(path)
    return 0


def _bitrate(text: str | None) -> int | None:
    """'8M', '2500k', '8000000' → bits per second."""
    if text is None:
        return None
    from bridge.errors import RenderError

    t = text.strip().lower().removesuffix("b/s").removesuffix("bps")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if scale > 1 else t) * scale)
    except ValueError:
        raise RenderError(f"--bitrate {text!r} is not a bit rate; write e.g. 8M, 2500k or 8000000") from None


# --- parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from bridge.separation.cli import add_separate_parser, add_separation_options

    p = argparse.ArgumentParser(
        prog="stembridge",
        description="Follow your DAW, analyse your stems and turn them into a music video.",
    )
    p.add_argument("--version", action="version", version=f"stembridge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="generate a demo song, make a project of it and render it")
    d.add_argument("--out", default="stembridge-demo", help="output folder (default: ./stembridge-demo)")
    d.add_argument("--width", type=int, default=1280)
    d.add_argument("--height", type=int, default=720)
    d.add_argument("--fps", default="30")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    d.set_defaults(func=cmd_demo)

    n = sub.add_parser("new", help="create a project from a folder of stems")
    n.add_argument("project_dir", metavar="PROJECT_DIR")
    n.add_argument("--stems", metavar="STEMS_DIR", help="folder with the stems your DAW exported")
    n.add_argument("--mix", metavar="MIX_FILE",
                   help="a full mix to split into stems with Demucs first (needs stembridge[ai])")
    n.add_argument("--name", help="project name (default: the folder name)")
    n.add_argument("--role", action="append", default=[], metavar="FILE=ROLE",
                   help="override a guessed role, e.g. --role '03 Vox.wav=vocals' (repeatable)")
    n.add_argument("--tempo", type=float, metavar="BPM", help="the song's tempo from the DAW (skips detection)")
    n.add_argument("--beats-per-bar", type=int, help="meter numerator with --tempo (default 4)")
    n.add_argument("--tempo-map", metavar="MIDI_FILE", help="a MIDI file with the DAW's tempo track")
    n.add_argument("--width", type=int)
    n.add_argument("--height", type=int)
    n.add_argument("--fps", help="e.g. 30, 25, 30000/1001")
    n.add_argument("--engine", choices=("shader", "procedural", "lcm"), type=str.lower,
                   help="visual engine (default: shader — a look per song and per section — where OpenGL 3.3 "
                        "is available here, else procedural)")
    n.add_argument("--no-analyze", action="store_true", help="don't analyse now (done on first render)")
    n.add_argument("--force", action="store_true", help="replace an existing stembridge.json")
    n.add_argument("-q", "--quiet", action="store_true")
    add_separation_options(n)
    n.set_defaults(func=cmd_new)

    a = sub.add_parser("analyze", help="analyse a project's stems (tempo, beats, sections, onsets)")
    a.add_argument("project_dir", metavar="PROJECT_DIR")
    a.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a.add_argument("--no-cache", action="store_true", help="ignore cached results")
    a.add_argument("-q", "--quiet", action="store_true")
    a.set_defaults(func=cmd_analyze)
    from bridge.analysis.rhythm_cli import add_rhythm_arguments

    add_rhythm_arguments(a)

    from bridge.export.presets import CODECS, ENCODE_SPEED_PRESETS, ENCODE_SPEEDS, PRESETS

    r = sub.add_parser("render", help="render a project to a video file (H.264 / HEVC / ProRes + AAC)")
    r.add_argument("project_dir", metavar="PROJECT_DIR")
    r.add_argument("-o", "--output", metavar="OUT.mp4",
                   help="default: PROJECT_DIR/render.mp4 (render.mov for ProRes)")
    r.add_argument("--preset", choices=tuple(PRESETS), type=str.lower,
                   help="size and fps for where the video goes: " + "; ".join(
                       f"{p.name} = {p.width}x{p.height} {p.fps} fps" for p in PRESETS.values())
                   + " (--width/--height/--fps override it)")
    r.add_argument("--width", type=int)
    r.add_argument("--height", type=int)
    r.add_argument("--fps", help="e.g. 30, 25, 30000/1001")
    r.add_argument("--codec", choices=tuple(CODECS), type=str.lower,
                   help="video codec (default: the project's, h264); prores writes a .mov")
    r.add_argument("--encoder", metavar="auto|hardware|NAME", type=str.lower,
                   help="which encoder makes the codec: auto (default: software first, the same file on every "
                        "machine), hardware (the GPU's: NVENC on NVIDIA, VideoToolbox on a Mac, Quick Sync, AMF, "
                        "VA-API), or an FFmpeg encoder name such as h264_nvenc; a bad choice lists what opens here")
    r.add_argument("--encode-speed", choices=ENCODE_SPEEDS, type=str.lower,
                   help="how hard x264 / x265 work (default: the project's, balanced): "
                        + ", ".join(f"{k} = preset {v}" for k, v in ENCODE_SPEED_PRESETS.items())
                        + ". draft: about half balanced's encoder CPU for 30-75%% more bits (drafts); "
                        "small: 20-55%% smaller files for 40-80%% more encoder CPU. The CRF sets the quality either way; "
                        "GPU encoders and ProRes ignore it")
    quality = r.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=int, metavar="N",
                         help="constant quality for h264/hevc, 0-51, lower = better (default: H.264 20, HEVC 24)")
    quality.add_argument("--bitrate", metavar="RATE", help="average video bit rate instead of CRF, e.g. 8M or 2500k")
    region = r.add_argument_group("region (default: the whole song)")
    region.add_argument("--start", type=float, metavar="S", help="start time in seconds")
    region.add_argument("--end", type=float, metavar="E", help="end time in seconds")
    region.add_argument("--section", metavar="N|NAME", help="render one section: its number (from 1) or name")
    region.add_argument("--fade-in", type=float, default=0.0, metavar="S",
                        help="fade the picture in from black and the sound in from silence over S seconds")
    region.add_argument("--fade-out", type=float, default=0.0, metavar="S",
                        help="fade the picture out to black and the sound out to silence over the last S seconds")
    r.add_argument("--engine", choices=("procedural", "shader", "lcm"), help="visual engine (default: the project's)")
    r.add_argument("--model", metavar="ID_OR_PATH", help="model for the lcm engine")
    r.add_argument("--look", metavar="NAME_OR_FILE.fs", help="look for the shader engine (stembridge looks list)")
    r.add_argument("-q", "--quiet", action="store_true")
    r.add_argument("--segments", type=int, metavar="N",
                   help="render in N segments (default: one per ~10 s; a killed render resumes from the last one)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of keeping finished segments")
    r.add_argument("--ray", metavar="auto|HOST:PORT",
                   help="render the segments in parallel on a Ray cluster (needs stembridge[cluster]): "
                        "'auto' joins a running cluster or starts one here; HOST:PORT is a head's GCS address")
    r.add_argument("--ray-cpus", type=int, default=1, metavar="N",
                   help="CPUs per Ray task (default 1): each segment renders and encodes with N threads, and "
                        "the cluster runs (its CPUs / N) segments at once")
    r.set_defaults(func=cmd_render)

    add_separate_parser(sub)

    from bridge.visuals.models_cli import add_models_parser

    add_models_parser(sub)

    from bridge.visuals.looks_cli import add_looks_parser

    add_looks_parser(sub)

    from bridge.commands.sections import add_sections_parser

    add_sections_parser(sub)

    from bridge.plugins.cli import add_fx_parser, add_plugins_parser

    add_plugins_parser(sub)
    add_fx_parser(sub)

    from bridge.transport.listen import add_listen_parser

    add_listen_parser(sub)

    from bridge.daw_install import add_daw_scripts_parser

    add_daw_scripts_parser(sub)

    from bridge.commands.preview import add_preview_parser

    add_preview_parser(sub)

    from bridge.commands.relink import add_relink_parser

    add_relink_parser(sub)

    from gui.cli import add_gui_parser

    add_gui_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        # plain `stembridge` opens the app (on the last project), as a desktop tool should
        from gui.cli import run_gui_command

        return run_gui_command(None)
    return run_command(args.func, args)

if __name__ == "__main__":
    sys.exit(main())
