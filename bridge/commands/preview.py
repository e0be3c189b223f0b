"""``stembridge preview PROJECT_DIR``: keep the preview cache warm, headless.

Opens the project in a :class:`~bridge.session.Session` (analysis, stems watcher, preview
scheduler, autosave), follows the DAW (the same sync options as ``stembridge listen``) or its own
clock, and ``--fps`` times a second writes

* ``OUT_DIR/frame.png`` — the frame for the transport's position now (atomically replaced, so a
  viewer or script never reads half a file; rewritten only when it changes);
* ``OUT_DIR/status.json`` — the latest status object (atomically replaced);
* one JSON status line on stdout (unless ``--quiet``): ``t``, ``position_seconds``, ``playing``,
  ``keyframes_total`` / ``keyframes_done`` / ``keyframes_pending``, ``last_edit_to_frame_ms``,
  ``frame_source`` (exact / blend / fallback / blank), ``analysing``, ``dirty``, ``last_error``.

Edits made to ``stembridge.json`` by a script while it runs are picked up (and re-rendered
incrementally), as are re-bounced stems. Wire it into the CLI with ``add_preview_parser(sub)``.

Top layer (it opens a Session, which owns the preview package), so it lives in
:mod:`bridge.commands` and not in :mod:`bridge.preview` (it was ``bridge.preview.cli``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from bridge.errors import BridgeError, ProjectError

_SYNC_OPTIONS = ("midi", "mtc", "osc", "ableton_osc", "reaper_osc", "bitwig_osc", "ardour_osc")


def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project_dir", metavar="PROJECT_DIR")
    try:
        from bridge.transport.listen import add_sync_arguments
    except ImportError:  # the transport package is optional here: fall back to the own clock
        add_sync_arguments = None
    if add_sync_arguments is not None:
        add_sync_arguments(parser)
    parser.add_argument("--out-dir", metavar="DIR", help="where frame.png and status.json go "
                        "(default: PROJECT_DIR/.stembridge/preview-out)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--fps", type=float, default=10.0, metavar="N",
                        help="frames (and status lines) written per second (default 10)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="without a sync source: the song position to start at (seconds)")
    parser.add_argument("--play", action="store_true", help="without a sync source: play from --start")
    parser.add_argument("--long-side", type=int, default=None, metavar="PX",
                        help="preview resolution, pixels on the long edge (default 384)")
    parser.add_argument("--wait-idle", action="store_true",
                        help="wait until analysis and every keyframe are done before writing the first frame")
    parser.add_argument("--no-watch", action="store_true", help="do not watch the stems folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stdout")


def add_preview_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``preview`` to the stembridge CLI: ``add_preview_parser(sub)`` in ``build_parser()``."""
    p = subparsers.add_parser(
        "preview", help="keep the live preview warm; write the current frame (PNG) and a status line (JSON)",
        description="Follow the DAW (or play on its own clock), keep the preview keyframes rendered, and "
        "write the frame for the current position to OUT_DIR/frame.png plus a JSON status line.",
    )
    add_preview_arguments(p)
    p.set_defaults(func=run_preview)
    return p


def _wants_sync(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in _SYNC_OPTIONS) or bool(getattr(args, "link", False))


def _write_png(path: Path, frame) -> None:
    import cv2

    from bridge.fsutil import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise BridgeError(f"could not encode the preview frame as PNG ({frame.shape})")
    atomic_write_bytes(path, buf.tobytes())


def run_preview(args: argparse.Namespace) -> int:
    """The ``preview`` command. Returns the exit status (0, also after Ctrl-C)."""
    from bridge.fsutil import atomic_write_text
    from bridge.session import AnalysisFailed, PreviewError, SaveFailed, Session

    if not (math.isfinite(args.fps) and 0 < args.fps <= 120):
        raise ProjectError(f"--fps {args.fps!r} must be between 0 and 120 frames per second")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration >= 0):
        raise ProjectError(f"--duration {args.duration!r} must be a number of seconds >= 0")
    sync = _wants_sync(args)
    clock = None
    if sync:
        from bridge.transport.listen import make_clock_from_args

        clock = make_clock_from_args(args)
    options = {"clock": clock, "watch": not args.no_watch}
    if args.long_side:
        options["preview_long_side"] = args.long_side
    session = Session.open(args.project_dir, **options)
    out_dir = Path(args.out_dir) if args.out_dir else session.project_dir / ".stembridge" / "preview-out"
    out_dir.mkdir(parents=True, exist_ok=True)
    last_error: str | None = None
    try:
        if sync:
            from bridge.transport.listen import build_sources_from_args

            sources = build_sources_from_args(args, session.clock)
        else:
            sources = nullcontext([])
            session.seek(max(0.0, args.start))
        with sources:
            if args.wait_idle:
                session.wait_idle(timeout_s=3600.0)
            if args.play and not sync:
                session.play()
            period = 1.0 / args.fps
            start = time.monotonic()
            next_tick = start
            last_frame = None
            while True:
                now = time.monotonic()
                if args.duration is not None and now - start >= args.duration and last_frame is not None:
                    break
                for event in session.poll_events():
                    if isinstance(event, (AnalysisFailed, PreviewError, SaveFailed)):
                        last_error = getattr(event, "message", str(event))
                t = session.transport()
                frame = session.frame_at(t.position_seconds)
                if frame is not last_frame:
                    _write_png(out_dir / "frame.png", frame)
                    last_frame = frame
                st = session.preview_status()
                status = {
                    "t": round(now - start, 4),
                    "position_seconds": round(t.position_seconds, 4),
                    "playing": t.playing,
                    "keyframes_total": st.keyframes_total,
                    "keyframes_done": st.keyframes_done,
                    "keyframes_pending": st.keyframes_pending,
                    "last_edit_to_frame_ms": None if st.last_edit_to_frame_ms is None
                    else round(st.last_edit_to_frame_ms, 2),
                    "frame_source": session.scheduler.last_frame_source,
                    "analysing": session.status()["analysing"],
                    "dirty": session.dirty,
                    "last_error": last_error,
                }
                line = json.dumps(status)
                atomic_write_text(out_dir / "status.json", line + "\n")
                if not args.quiet:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                next_tick += period
                sleep = next_tick - time.monotonic()
                if sleep > 0:
                    time.sleep(sleep)
                else:
                    next_tick = time.monotonic()  # fell behind: don't burst to catch up
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.commands.preview PROJECT_DIR …`` until the lead wires ``stembridge preview``."""
    parser = argparse.ArgumentParser(prog="stembridge preview")
    add_preview_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_preview(args)
    except BridgeError as e:
        print(f"stembridge: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
