"""``stembridge sections import-daw PROJECT --daw live|reaper``: the DAW's markers become sections.

Live (AbletonOSC): asks ``/live/song/get/cue_points`` at ``--daw-address`` (default
127.0.0.1:11000) and reads the reply on ``--port`` (AbletonOSC always replies to port 11001).
Live with our StemBridge script (``--daw live-script``): listens on ``--port`` (default 9031) for
the locator list the script sends every 2 s.
REAPER: listens on ``--port`` (REAPER's device port, default 9032) for the marker and region
feedback of the stembridge pattern file; with ``--daw-address`` (REAPER's own listen port) it also
asks REAPER to send them again. The project's sections are replaced (``--merge``: kept, markers
added) as one edit, and the project is saved.
"""

from __future__ import annotations

import argparse
import sys

from bridge.errors import TransportError
from bridge.transport import osc_protocol as P

#: --daw → (dialect, default listen port, default DAW address or None)
DAWS = {
    "live": ("ableton", P.ABLETON_OSC_REPLY_PORT, f"127.0.0.1:{P.ABLETON_OSC_LIVE_PORT}"),
    "live-script": ("stembridge", P.STEMBRIDGE_OSC_PORT, None),  # our script pushes them every 2 s
    "reaper": ("reaper", P.REAPER_OSC_SUGGESTED_PORT, None),
}
NAMES = {"live": "Ableton Live", "live-script": "Ableton Live", "reaper": "REAPER"}


def add_sections_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sections", help="the project's sections (import the DAW's markers)")
    sub = p.add_subparsers(dest="sections_command", metavar="ACTION", required=True)
    i = sub.add_parser(
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
    return p


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
