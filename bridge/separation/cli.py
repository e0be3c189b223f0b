"""``stembridge separate MIX -o STEMS_DIR``: the command-line face of bridge.separation.

``bridge/cli.py`` wires it in with :func:`add_separate_parser`; ``stembridge new --mix`` reuses
:func:`add_separation_options` and :func:`separation_kwargs` so both commands take the same options.
``python -m bridge.separation.cli MIX -o DIR`` runs it alone (the speed benchmark uses that).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

_MODELS_HELP = (
    "htdemucs (default; 4 stems), htdemucs_ft (a bit better, ~4x slower), htdemucs_6s (adds guitar "
    "and piano), hdemucs_mmi, mdx_extra; or a model name inside --model-repo"
)


def add_separation_options(parser: argparse.ArgumentParser) -> None:
    """The model and quality options, shared by ``separate`` and ``new --mix``."""
    g = parser.add_argument_group("separation (Demucs)")
    g.add_argument("--model", metavar="NAME", default=None, help=_MODELS_HELP)
    g.add_argument("--model-repo", metavar="DIR", default=None,
                   help="folder with model files (<sig>.th or <sig>.safetensors, + <name>.yaml for a bag); "
                        "works offline")
    g.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="where to run the model (default: cuda, else mps, else cpu)")
    g.add_argument("--shifts", type=int, default=1, metavar="N",
                   help="random time shifts averaged (default 1; each extra one is a full pass for ~0.2 dB)")
    g.add_argument("--overlap", type=float, default=0.25, metavar="F",
                   help="overlap between segments, 0..1 (default 0.25)")
    g.add_argument("--segment", type=float, default=None, metavar="S",
                   help="segment length in seconds (default: the model's; at most 7.8 for htdemucs models)")
    depth = g.add_mutually_exclusive_group()
    depth.add_argument("--float", dest="bit_depth", action="store_const", const="float",
                       help="write 32-bit float WAVs (default)")
    depth.add_argument("--int24", dest="bit_depth", action="store_const", const="int24",
                       help="write 24-bit WAVs (half the size; peaks above full scale are clipped)")
    g.add_argument("--no-cache", action="store_true", help="separate again even if a cached result exists")
    parser.set_defaults(bit_depth="float")


def separation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`bridge.separation.separate_mix_to_folder` from parsed options."""
    return {"model": args.model, "model_repo": args.model_repo, "device": args.device, "shifts": args.shifts,
            "overlap": args.overlap, "segment": args.segment, "bit_depth": args.bit_depth,
            "use_cache": not args.no_cache}


def cmd_separate(args: argparse.Namespace) -> int:
    from bridge.cli_support import tqdm_progress
    from bridge.separation.demucs_runner import separate_mix_to_folder

    quiet = getattr(args, "quiet", False)
    with tqdm_progress("separating", "segment", quiet=quiet) as progress:
        paths = separate_mix_to_folder(args.mix, args.out, progress=progress, **separation_kwargs(args))
    for path in paths:
        print(path)
    return 0


def add_separate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``separate`` to the ``stembridge`` sub-command parsers; returns the new parser."""
    p = subparsers.add_parser(
        "separate", help="split a full mix into stems with Demucs (needs stembridge[ai])",
        description="Split a full mix into one WAV per source (drums, bass, other, vocals; guitar and piano "
                    "with htdemucs_6s) at the model's sample rate. Results are cached: running it again "
                    "on the same mix with the same options is instant.")
    p.add_argument("mix", metavar="MIX", help="the mixdown (WAV, AIFF, FLAC, MP3, OGG...)")
    p.add_argument("-o", "--out", required=True, metavar="STEMS_DIR",
                   help="folder for the stems, written as '<mix name> - <source>.wav'")
    add_separation_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_separate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``separate`` on its own: the same as ``stembridge separate …`` (exit 2 user error, 130 cancelled)."""
    from bridge.cli_support import run_command

    parser = argparse.ArgumentParser(prog="stembridge")
    add_separate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["separate", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["add_separate_parser", "add_separation_options", "cmd_separate", "main", "separation_kwargs"]
