"""`stembridge looks list|add`: the shader engine's looks (ISF .fs files)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_looks_list(args: argparse.Namespace) -> int:
    from bridge.visuals.isf import load_isf
    from bridge.visuals.shader_looks import MAPPABLE_INPUT_TYPES, SHIPPED_LOOKS, available_looks

    for name, path in available_looks().items():
        shader = load_isf(path)
        where = "" if path.parent == SHIPPED_LOOKS else f"  ({path})"
        print(f"{name:<14} {shader.description}{where}")
        if args.inputs:
            for item in shader.inputs:
                if item.type in MAPPABLE_INPUT_TYPES:
                    lo = "" if item.minimum is None else f" min {item.minimum}"
                    hi = "" if item.maximum is None else f" max {item.maximum}"
                    print(f"{'':<14}   shader:{item.name:<12} {item.type}, default {item.default}{lo}{hi}")
    if args.thumbnails:
        return _write_thumbnails(Path(args.thumbnails))
    return 0


def _write_thumbnails(folder: Path) -> int:
    """NAME.png for every look in ``folder`` (from the thumbnail cache, rendered when missing).
    A look that does not compile is reported and skipped; no OpenGL stops at once (with the fix)."""
    import shutil

    from bridge.errors import RenderError
    from bridge.gl import create_gl_context
    from bridge.visuals.shader_looks import available_looks
    from bridge.visuals.thumbnails import thumbnail

    create_gl_context().release()  # no OpenGL: one clear error, not one per look
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, path in available_looks().items():
        try:
            shutil.copyfile(thumbnail(path), folder / f"{name}.png")
        except RenderError as e:
            failed += 1
            print(f"{name}: no thumbnail: {e}", file=sys.stderr)
    print(f"wrote {len(available_looks()) - failed} thumbnails to {folder}")
    return 1 if failed else 0


def cmd_looks_add(args: argparse.Namespace) -> int:
    from bridge.visuals.shader_looks import add_look

    for path in add_look(args.source):
        print(f"added look {path.stem!r}: {path}")
    return 0


def add_looks_parser(sub: argparse._SubParsersAction) -> None:
    looks = sub.add_parser("looks", help="the shader engine's looks (ISF shaders): list, add your own")
    lsub = looks.add_subparsers(dest="looks_command", required=True)
    ls = lsub.add_parser("list", help="list the looks (shipped and yours) with a one-line description")
    ls.add_argument("--inputs", action="store_true",
                    help="also list each look's inputs that mappings can drive (targets shader:NAME)")
    ls.add_argument("--thumbnails", metavar="DIR",
                    help="also write a thumbnail of each look, DIR/NAME.png (192x108; cached per .fs content)")
    ls.set_defaults(func=cmd_looks_list)
    add = lsub.add_parser("add", help="copy an ISF .fs file (or a folder of them) into your looks")
    add.add_argument("source", metavar="FILE.fs|FOLDER")
    add.set_defaults(func=cmd_looks_add)
