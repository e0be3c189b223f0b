"""``stembridge models pull ID`` and ``stembridge models list``: the only way stembridge downloads models.

Wired into :mod:`bridge.cli` with ``add_models_parser(sub)``; each command is a thin layer over
:mod:`bridge.visuals.models` and raises BridgeError subclasses that the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import json
import sys


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def cmd_models_pull(args: argparse.Namespace) -> int:
    from bridge.visuals.models import pull_model

    if args.model_id.split(":")[0] in ("beat-this", "beat_this"):  # the learned beat tracker's checkpoints
        from bridge.analysis.learned_beats import pull_checkpoint

        print(pull_checkpoint(args.model_id))
        return 0
    for path in pull_model(args.model_id, cache_dir=args.cache_dir, revision=args.revision):
        print(path)
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from bridge.visuals.models import KNOWN_MODELS, hf_cache_dir, list_local_models

    local = list_local_models(cache_dir=args.cache_dir)
    here = {m.model_id for m in local}
    usable = {"lcm", "turbo", "base", "lora", "tiny_vae"}
    if args.json:
        print(json.dumps({
            "cache_dir": str(hf_cache_dir(args.cache_dir)),
            "downloaded": [{"id": m.model_id, "kind": m.kind, "path": str(m.path), "size_bytes": m.size_bytes}
                           for m in local if args.all or m.kind in usable],
            "known": [{"id": k.model_id, "kind": k.kind, "about": k.about, "download_gb": k.download_gb,
                       "downloaded": k.model_id in here} for k in KNOWN_MODELS],
        }))
        return 0
    shown = [m for m in local if args.all or m.kind in usable]
    print(f"Downloaded (Hugging Face cache {hf_cache_dir(args.cache_dir)}):")
    if not shown:
        print("  none")
    for m in shown:
        print(f"  {m.model_id:<48} {m.kind:<9} {_size(m.size_bytes):>9}")
    print("Known to work with --engine lcm:")
    for k in KNOWN_MODELS:
        mark = "downloaded" if k.model_id in here else f"stembridge models pull {k.model_id}  (~{k.download_gb:g} GB)"
        print(f"  {k.model_id:<48} {k.kind:<9} {mark}")
        print(f"      {k.about}")
    print("A local diffusers folder (with model_index.json) works too: --model /path/to/folder", file=sys.stderr)
    return 0


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``models`` (with ``pull`` and ``list``) to the stembridge subcommands; returns its parser."""
    m = subparsers.add_parser("models", help="download and list diffusion models for --engine lcm")
    sub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    pull = sub.add_parser("pull", help="download a model into the Hugging Face cache (the only command that does)")
    pull.add_argument("model_id", metavar="ID",
                      help="Hugging Face id, e.g. SimianLuo/LCM_Dreamshaper_v7, or BASE+LORA; or "
                           "beat-this[:NAME] for a learned beat tracker checkpoint (default final0)")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    pull.set_defaults(func=cmd_models_pull)

    lst = sub.add_parser("list", help="models on this computer, and the ones known to work")
    lst.add_argument("--json", action="store_true", help="print one JSON object")
    lst.add_argument("--all", action="store_true", help="also show cached repos that are not diffusion models")
    lst.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    lst.set_defaults(func=cmd_models_list)
    return m
