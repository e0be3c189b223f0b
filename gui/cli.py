"""``stembridge gui [PROJECT_DIR] [--screenshot OUT.png]`` — wire with ``add_gui_parser(sub)`` in
``bridge.cli.build_parser()``; plain ``stembridge`` (no command) calls :func:`run_gui_command` with
no arguments. Qt is imported only when the command runs, so ``stembridge --help`` stays fast and
works without PySide6."""

from __future__ import annotations

import argparse


def add_gui_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("gui", help="open the preview app (the window you keep beside your DAW)",
                              description="Open the stembridge app on a project folder (default: the last one).")
    p.add_argument("project_dir", nargs="?", metavar="PROJECT_DIR", help="project folder (holding stembridge.json)")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render the main window to a PNG and exit (works headless with QT_QPA_PLATFORM=offscreen)")
    p.add_argument("--size", metavar="WxH", default="1600x980", type=_size,
                   help="with --screenshot: the window's size in pixels (default 1600x980; e.g. 3840x2160)")
    p.add_argument("--dialog", choices=("connect", "export", "preferences"),
                   help="with --screenshot: open this dialog over the window (Connect to your DAW, Export video, "
                        "Preferences)")
    p.add_argument("--tab", metavar="NAME",
                   help="start on this editor tab (Mappings, Sections, Stems, Effects, Looks …; any case)")
    p.set_defaults(func=run_gui_command)
    return p


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write WIDTHxHEIGHT, e.g. 3840x2160") from None
    if not (320 <= w <= 16384 and 240 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"{text!r}: pick 320x240 to 16384x16384")
    return w, h


def run_gui_command(args: argparse.Namespace | None = None) -> int:
    """Run the app. Raises MissingDependency when PySide6 is not installed."""
    try:
        import PySide6  # noqa: F401
    except ImportError:
        from bridge.session import MissingDependency

        raise MissingDependency("PySide6-Essentials", feature="The stembridge app") from None
    import os
    import sys

    screenshot = getattr(args, "screenshot", None)
    if screenshot and not os.environ.get("QT_QPA_PLATFORM") and sys.platform.startswith("linux") \
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    from gui.app import run_gui

    return run_gui(getattr(args, "project_dir", None), screenshot=screenshot,
                   size=getattr(args, "size", None) or (1600, 980), dialog=getattr(args, "dialog", None),
                   tab=getattr(args, "tab", None))
