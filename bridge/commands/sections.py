"""`stembridge sections list|set|adopt|import-daw`: the project's sections, their looks and transitions.

``list`` shows what a shader render uses: each section's look (``auto``: chosen from the music,
:func:`bridge.visuals.character.auto_section_looks`), its transition and the hit response.
``set N`` changes section N (from 1): ``--look NAME|FILE.fs|auto``, ``--transition
cut|crossfade|melt``, ``--beats`` (transition length), ``--name``. ``adopt`` makes the detected
sections the project's own, so they can be edited.

``import-daw PROJECT --daw live|live-script|reaper``: the DAW's markers become the sections.
Live (AbletonOSC): asks ``/live/song/get/cue_points`` at ``--daw-address`` (default
127.0.0.1:11000) and reads the reply on ``--port`` (AbletonOSC always replies to port 11001).
Live with our StemBridge script (``--daw live-script``): listens on ``--port`` (default 9031) for
the locator list the script sends every 2 s. REAPER: listens on ``--port`` (REAPER's device port,
default 9032) for the marker and region feedback of the stembridge pattern file; with
``--daw-address`` (REAPER's own listen port) it also asks REAPER to send them again. The project's
sections are replaced (``--merge``: kept, markers added) as one edit, and the project is saved.

A top-layer command (:mod:`bridge.commands`): it analyses, renders section looks and opens a
Session, all of which sit above the project and transport layers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.errors import ProjectError, TransportError
from bridge.transport import osc_protocol as P

#: --daw → (dialect, default listen port, default DAW address or None)
DAWS = {
    "live": ("ableton", P.ABLETON_OSC_REPLY_PORT, f"127.0.0.1:{P.ABLETON_OSC_LIVE_PORT}"),
    "live-script": ("stembridge", P.STEMBRIDGE_OSC_PORT, None),  # our script pushes them every 2 s
    "reaper": ("reaper", P.REAPER_OSC_SUGGESTED_PORT, None),
}
NAMES = {"live": "Ableton Live", "live-script": "Ableton Live", "reaper": "REAPER"}


def _analysis(project, project_dir: Path, quiet: bool):
    from bridge.analysis.project import analyze_project
    from bridge.cli_support import tqdm_progress

    with tqdm_progress("analysing", "stem", quiet=quiet) as progress:
        return analyze_project(project, project_dir, progress=progress)


def cmd_sections_list(args: argparse.Namespace) -> int:
    from bridge.export.render import section_looks
    from bridge.mapping.sections import section_order
    from bridge.project import load_project

    project, project_dir = load_project(args.project_dir)
    analysis = _analysis(project, project_dir, args.quiet)
    looks = section_looks(project, analysis, engine_name="shader")
    own = project.sections
    if not own:
        print("(detected sections; `stembridge sections adopt` makes them the project's own to edit)")
    if project.engine.look:
        print(f"(the project sets one look for the song: {project.engine.look}; sections without a look use it)")
    by_start = section_order(own, analysis.beat_grid)  # as section_looks orders them (beats through the grid)
    for rank, look in enumerate(looks):
        spec = own[by_start[rank]] if own else None
        number = by_start[rank] + 1 if own else rank + 1
        chosen = look.look or project.engine.look or "(engine look)"
        origin = "" if spec is not None and spec.look else "  (auto)" if not project.engine.look else ""
        transition = look.transition if rank else "- (nothing before it)"
        if rank and look.transition != "cut":
            transition += f" {spec.transition_beats:g} beats" if spec is not None else ""
        print(f"{number:>3}  {look.name or '-':<16} {look.start_s:8.2f} – {look.end_s:8.2f} s  "
              f"{chosen:<14}{origin:<9} {transition:<22} hit ×{look.hit:g}")
    return 0


def _section_index(project, number: int) -> int:
    if not project.sections:
        raise ProjectError("the project has no sections of its own yet; run `stembridge sections adopt "
                           "PROJECT_DIR` to make the detected ones editable, then set them")
    if not 1 <= number <= len(project.sections):
        raise ProjectError(f"section {number} is not in the project; its sections are numbered 1 to "
                           f"{len(project.sections)} (`stembridge sections list`)")
    return number - 1


def cmd_sections_set(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bridge.mapping.sections import section_order
    from bridge.project import load_project, save_project
    from bridge.project.schema import Section

    project, project_dir = load_project(args.project_dir)
    i = _section_index(project, args.number)
    changes: dict = {}
    if args.look is not None:
        look = args.look.strip()
        if look.lower() == "auto":
            changes["look"] = None
        elif look.lower().endswith(".fs"):
            path = Path(look).expanduser().resolve()
            if not path.is_file():
                raise ProjectError(f"--look {look!r}: no such file; give an ISF .fs file, a look name "
                                   "(`stembridge looks list`) or auto")
            changes["look"] = str(path)  # absolute: renders run from any folder
        else:
            from bridge.visuals.shader_looks import check_look_name

            try:
                changes["look"] = check_look_name(look)
            except ValueError as e:
                raise ProjectError(f"--look: {e}") from None
    if args.transition is not None:
        changes["transition"] = args.transition
    if args.beats is not None:
        changes["transition_beats"] = args.beats
    if args.name is not None:
        changes["name"] = args.name
    if not changes:
        raise ProjectError("nothing to set; give --look, --transition, --beats or --name")
    sections = list(project.sections)
    try:
        sections[i] = Section.model_validate({**sections[i].model_dump(), **changes})
    except ValidationError as e:
        from bridge.project.store import format_option_errors

        problems = format_option_errors(e, names={"transition_beats": "--beats", "transition": "--transition",
                                                  "name": "--name", "look": "--look"})
        raise ProjectError(f"section {args.number} was not changed: {problems}") from None
    save_project(project.model_copy(update={"sections": sections}), project_dir)
    s = sections[i]
    print(f"section {args.number} ({s.name or 'unnamed'}): look {s.look or 'auto'}, {s.transition}"
          + (f" over {s.transition_beats:g} beats" if s.transition != "cut" else ""))
    # starts in beats at the project's tempo, not through the analysis' grid: that differs only in
    # a project that mixes sections in seconds and in beats
    plays_first = section_order(sections, tempo_bpm=project.tempo.tempo_bpm)[0] == i
    if {"transition", "transition_beats"} & changes.keys() and plays_first:
        print(f"note: section {args.number} plays first: there is no section before it to transition from, "
              "so its transition does nothing (it is kept, and applies if a section is put before it). To fade "
              "the video in from black: stembridge render --fade-in S", file=sys.stderr)
    return 0


def cmd_sections_adopt(args: argparse.Namespace) -> int:
    from bridge.project import load_project, save_project
    from bridge.project.create import sections_from_analysis
    from bridge.visuals.character import section_transitions

    project, project_dir = load_project(args.project_dir)
    if project.sections and not args.force:
        raise ProjectError(f"the project already has {len(project.sections)} sections of its own; pass "
                           "--force to replace them with the detected ones")
    analysis = _analysis(project, project_dir, args.quiet)
    # detected boundaries sit on downbeats: into a louder section the picture cuts there
    sections = sections_from_analysis(analysis.sections, seed=project.engine.seed,
                                      transitions=section_transitions(analysis, list(analysis.sections)))
    save_project(project.model_copy(update={"sections": sections}), project_dir)
    print(f"{len(sections)} section{'' if len(sections) == 1 else 's'} adopted")
    return 0


def add_sections_parser(sub: argparse._SubParsersAction) -> None:
    from bridge.project.schema import SECTION_TRANSITIONS

    p = sub.add_parser("sections", help="the project's sections: list them with their looks and transitions, "
                                        "set a section's look or transition, adopt the detected ones")
    ssub = p.add_subparsers(dest="sections_command", required=True)
    ls = ssub.add_parser("list", help="each section with the look a shader render gives it (auto: from the "
                                      "music), its transition and hit response")
    ls.add_argument("project_dir", metavar="PROJECT_DIR")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.set_defaults(func=cmd_sections_list)
    st = ssub.add_parser("set", help="change section N (from 1, as `sections list` numbers them)")
    st.add_argument("project_dir", metavar="PROJECT_DIR")
    st.add_argument("number", type=int, metavar="N")
    st.add_argument("--look", metavar="NAME|FILE.fs|auto",
                    help="the section's look (`stembridge looks list`), an ISF file, or auto (from the music)")
    st.add_argument("--transition", choices=SECTION_TRANSITIONS, type=str.lower,
                    help="how the section enters: cut on its start, crossfade or melt over --beats (from the "
                         "section before it: the first section has none; render --fade-in fades in from black)")
    st.add_argument("--beats", type=float, metavar="B", help="transition length in beats (0–64)")
    st.add_argument("--name")
    st.set_defaults(func=cmd_sections_set)
    ad = ssub.add_parser("adopt", help="make the detected sections (on downbeats) the project's own: a cut into a "
                                       "louder section, a crossfade otherwise")
    ad.add_argument("project_dir", metavar="PROJECT_DIR")
    ad.add_argument("--force", action="store_true", help="replace sections the project already has")
    ad.add_argument("-q", "--quiet", action="store_true")
    ad.set_defaults(func=cmd_sections_adopt)
    i = ssub.add_parser(
        "import-daw", help="make the DAW's markers (Live cue points, REAPER markers/regions) the sections",
        description="Ask the DAW for its markers over OSC (or listen for them) and make them the project's "
        "sections, names kept. Ardour's OSC sends no marker list: add Ardour's sections in stembridge.")
    i.add_argument("project_dir", metavar="PROJECT")
    i.add_argument("--daw", required=True, choices=(*DAWS, "ardour"), help="which DAW sends the markers (live: via AbletonOSC; live-script: via our StemBridge script)")
    i.add_argument("--port", type=int, metavar="N", help="local UDP port the DAW replies / sends to "
                   f"(live: {P.ABLETON_OSC_REPLY_PORT}, live-script: {P.STEMBRIDGE_OSC_PORT}, "
                   f"reaper: {P.REAPER_OSC_SUGGESTED_PORT})")
    i.add_argument("--daw-address", metavar="HOST:PORT", help="where the DAW listens, to ask it for the markers "
                   f"(live default 127.0.0.1:{P.ABLETON_OSC_LIVE_PORT}; reaper: optional)")
    i.add_argument("--merge", action="store_true", help="keep the existing sections, add the markers between them")
    i.add_argument("--window", type=float, default=3.0, metavar="S",
                   help="wait at most this long for the markers (default 3 s)")
    i.set_defaults(func=run_import_daw)


def run_import_daw(args: argparse.Namespace) -> int:
    from bridge.session import Session
    from bridge.transport.osc_io import fetch_daw_markers, parse_host_port

    if args.daw not in DAWS:
        raise TransportError(
            "Ardour's OSC surface sends no list of its locations (only the marker at the playhead), so its "
            "markers cannot be imported; add the sections in stembridge, or follow Ardour and place them there")
    dialect, default_port, default_daw = DAWS[args.daw]
    port = default_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise TransportError(f"--port {port} is not a UDP port; use 1-65535")
    daw_text = args.daw_address or default_daw
    daw_address = None if daw_text is None else parse_host_port(daw_text, option="--daw-address")
    # open the project first: a bad project folder is reported before anything listens
    with Session.open(args.project_dir, analyse=False, preview=False, watch=False, autosave=False) as session:
        markers = fetch_daw_markers(dialect, listen=(P.DEFAULT_LISTEN_HOST, port), daw_address=daw_address,
                                    window_s=args.window)
        name = NAMES[args.daw]
        count = session.import_daw_markers(markers, mode="merge" if args.merge else "replace", daw=name)
        session.save()
        for s in session.project.sections:
            end = "" if s.end is None else f"–{s.end:g}"
            print(f"{s.start:g}{end} {s.unit}\t{s.name}")
    print(f"stembridge: {len(markers)} markers from {name} → {count} sections in {args.project_dir}", file=sys.stderr)
    return 0
