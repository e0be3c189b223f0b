"""`stembridge plugins scan|list` and `stembridge fx add|list|remove|bypass|set|move|editor`."""

from __future__ import annotations

import argparse
import json
import sys

from bridge.errors import PluginError


def cmd_plugins_scan(args: argparse.Namespace) -> int:
    from bridge.plugins.scan import as_json, scan_plugins

    result = scan_plugins(args.folder, standard=not args.no_standard, rescan=args.rescan, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(as_json(result), indent=1))
        return 0
    _print_plugins(result)
    print(f"{len(result.plugins)} plugin(s), {len(result.failures)} skipped; loaded {result.probed} "
          f"bundle(s) this time (the rest unchanged since the last scan)", file=sys.stderr)
    return 0


def cmd_plugins_list(args: argparse.Namespace) -> int:
    from bridge.plugins.builtins import BUILTIN_EFFECTS
    from bridge.plugins.scan import as_json, known_plugins

    result = known_plugins()
    if args.json:
        print(json.dumps({**as_json(result), "builtins": list(BUILTIN_EFFECTS)}, indent=1))
        return 0
    _print_plugins(result)
    if not result.plugins and not result.failures:
        print("no scanned plugins yet: run `stembridge plugins scan` (add --folder DIR for your own folders)",
              file=sys.stderr)
    print(f"built-in: {', '.join(BUILTIN_EFFECTS)}")
    return 0


def _print_plugins(result) -> None:
    for p in result.plugins:
        print(f"{p.name:<24} {p.format:<5} {p.manufacturer[:20]:<20} {p.path}")
    for f in result.failures:
        print(f"skipped (blocklisted): {f.path}: {f.reason}", file=sys.stderr)


def _target(args: argparse.Namespace, project) -> tuple[str | None, str]:
    """(stem name as the project spells it, or None for the master; how messages name the chain).
    ``--stem drums`` finds the stem ``Drums``: producers type names as their DAW shows them."""
    if args.master:
        return None, "the master chain"
    from bridge.plugins.edit import stem_name

    stem = stem_name(project, args.stem)
    return stem, f"stem {stem!r}"


def _params(items: list[str]) -> dict:
    from bridge.plugins.edit import parse_param

    return dict(parse_param(item) for item in items)


def _edit(args: argparse.Namespace, change) -> int:
    """Load the project, change one chain with ``change(slots, where) -> message``, save."""
    from bridge.plugins.edit import chain_of, with_chain
    from bridge.project import load_project, save_project

    project, folder = load_project(args.project_dir)
    stem, where = _target(args, project)
    slots = chain_of(project, stem)
    message = change(slots, where, project)
    save_project(with_chain(project, stem, slots), folder)
    print(message)
    return 0


def cmd_fx_add(args: argparse.Namespace) -> int:
    from bridge.plugins.chain import chain_tempo_bpm
    from bridge.plugins.edit import make_slot

    def change(slots, where, project):
        slot = make_slot(args.plugin, name=args.name, parameters=_params(args.param), mix=args.mix,
                         tempo_bpm=chain_tempo_bpm(project) or 120.0)
        position = len(slots) if args.position is None else max(0, min(len(slots), args.position - 1))
        slots.insert(position, slot)
        return f"added {slot.label} to {where} as slot {position + 1}"

    return _edit(args, change)


def cmd_fx_remove(args: argparse.Namespace) -> int:
    from bridge.plugins.edit import slot_index

    def change(slots, where, project):
        slot = slots.pop(slot_index(slots, args.slot, where=where))
        return f"removed slot {args.slot} ({slot.label}) from {where}"

    return _edit(args, change)


def cmd_fx_move(args: argparse.Namespace) -> int:
    from bridge.plugins.edit import slot_index

    def change(slots, where, project):
        i = slot_index(slots, args.slot, where=where)
        j = slot_index(slots, args.to, where=where)
        slot = slots.pop(i)
        slots.insert(j, slot)
        order = ", ".join(f"{n}. {s.label}" for n, s in enumerate(slots, 1))
        return f"moved {slot.label} to slot {args.to} of {where}: {order}"

    return _edit(args, change)


def cmd_fx_editor(args: argparse.Namespace) -> int:
    from bridge.plugins.edit import slot_index
    from bridge.plugins.editor import open_editor

    def change(slots, where, project):
        i = slot_index(slots, args.slot, where=where)
        window = open_editor(slots[i])  # PluginError (built-in, not installed, no display) before it opens
        print(f"{slots[i].label}'s window is open; close it to save its settings", file=sys.stderr)
        try:
            result = window.wait()
        except KeyboardInterrupt:
            window.close()
            result = window.wait(10)
        if result is None or result.error is not None:
            raise PluginError(result.error if result is not None else f"{slots[i].label}'s window did not close")
        slots[i] = slots[i].model_copy(update={"raw_state": result.raw_state, "parameters": result.parameters})
        changed = ", ".join(result.changed) or "nothing"
        return f"{where}, slot {args.slot} ({slots[i].label}): changed in its window: {changed}"

    return _edit(args, change)


def cmd_fx_bypass(args: argparse.Namespace) -> int:
    from bridge.plugins.edit import slot_index, update_slot

    def change(slots, where, project):
        i = slot_index(slots, args.slot, where=where)
        slots[i] = update_slot(slots[i], bypass=not args.off)
        return f"{where}, slot {args.slot} ({slots[i].label}): {'bypassed' if slots[i].bypass else 'active'}"

    return _edit(args, change)


def cmd_fx_set(args: argparse.Namespace) -> int:
    from bridge.plugins.chain import chain_tempo_bpm
    from bridge.plugins.edit import slot_index, update_slot

    def change(slots, where, project):
        if not args.param and args.mix is None:
            raise PluginError("fx set needs --param NAME=VALUE (repeatable) and/or --mix 0..1")
        i = slot_index(slots, args.slot, where=where)
        slots[i] = update_slot(slots[i], parameters=_params(args.param), mix=args.mix,
                               tempo_bpm=chain_tempo_bpm(project) or 120.0)
        return f"{where}, slot {args.slot} ({slots[i].label}): {_describe(slots[i])}"

    return _edit(args, change)


def _describe(slot) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in slot.parameters.items()) or "defaults"
    state = " +state" if slot.raw_state else ""
    mix = f" mix={slot.mix:g}" if slot.mix < 1 else ""
    return f"{settings}{mix}{state}"


def cmd_fx_list(args: argparse.Namespace) -> int:
    from bridge.plugins.chain import locate_plugin
    from bridge.project import load_project

    project, _ = load_project(args.project_dir)
    chains = [(f"stem {s.name!r}", s.fx) for s in project.stems] + [("master", project.master_fx)]
    if args.json:
        print(json.dumps({where: [s.model_dump(mode="json") | {"installed": s.is_builtin or
                                                                locate_plugin(s) is not None}
                                  for s in slots] for where, slots in chains}, indent=1))
        return 0
    for where, slots in chains:
        if not slots:
            continue
        print(f"{where}:")
        for i, slot in enumerate(slots, 1):
            flags = []
            if slot.bypass:
                flags.append("BYPASSED")
            if not slot.is_builtin and locate_plugin(slot) is None:
                flags.append("MISSING (bypassed when rendering)")
            print(f"  {i}. {slot.label:<20} {_describe(slot)}{'  [' + ', '.join(flags) + ']' if flags else ''}")
    return 0


def add_plugins_parser(sub: argparse._SubParsersAction) -> None:
    plugins = sub.add_parser("plugins", help="find your VST3 (and AU) plugins: scan, list")
    psub = plugins.add_subparsers(dest="plugins_command", required=True)
    scan = psub.add_parser("scan", help="load every plugin bundle in a child process (a crashing one is "
                                        "blocklisted) and remember what was found")
    scan.add_argument("--folder", action="append", default=[], metavar="DIR",
                      help="also scan DIR (remembered for later scans; repeatable)")
    scan.add_argument("--no-standard", action="store_true",
                      help="skip the standard plugin folders (scan only --folder DIRs and those added before)")
    scan.add_argument("--rescan", action="store_true",
                      help="load every bundle again, even unchanged and blocklisted ones")
    scan.add_argument("--timeout", type=float, default=20.0, metavar="S",
                      help="seconds one bundle may take to load (default 20)")
    scan.add_argument("--json", action="store_true", help="print the result as one JSON object")
    scan.set_defaults(func=cmd_plugins_scan)
    ls = psub.add_parser("list", help="the plugins found by the last scans, and the built-in effects")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_plugins_list)


def _chain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project_dir", metavar="PROJECT")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--stem", metavar="NAME", help="the stem whose chain to edit (any case: Drums finds drums)")
    where.add_argument("--master", action="store_true", help="edit the master chain (the export mix)")


def add_fx_parser(sub: argparse._SubParsersAction) -> None:
    fx = sub.add_parser("fx", help="effect chains per stem and on the master: add, list, remove, bypass, set, "
                                   "move, editor")
    fsub = fx.add_subparsers(dest="fx_command", required=True)
    add = fsub.add_parser("add", help="append an effect: a built-in (LowpassFilter, Compressor …), a "
                                      "scanned plugin's name, or a .vst3/.component path")
    _chain_arguments(add)
    add.add_argument("plugin", metavar="PLUGIN")
    add.add_argument("--name", help="which plugin, when the bundle holds several")
    add.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter, e.g. --param cutoff_frequency_hz=800 (repeatable)")
    add.add_argument("--mix", type=float, default=1.0, metavar="0..1", help="wet/dry (default 1 = all wet)")
    add.add_argument("--position", type=int, metavar="N", help="insert as slot N (default: last)")
    add.set_defaults(func=cmd_fx_add)

    ls = fsub.add_parser("list", help="every chain of the project, slots numbered from 1")
    ls.add_argument("project_dir", metavar="PROJECT")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_fx_list)

    rm = fsub.add_parser("remove", help="remove slot N")
    _chain_arguments(rm)
    rm.add_argument("slot", type=int, metavar="N")
    rm.set_defaults(func=cmd_fx_remove)

    by = fsub.add_parser("bypass", help="bypass slot N (--off: make it active again)")
    _chain_arguments(by)
    by.add_argument("slot", type=int, metavar="N")
    by.add_argument("--off", action="store_true", help="un-bypass")
    by.set_defaults(func=cmd_fx_bypass)

    mv = fsub.add_parser("move", help="move slot N to position TO (the audio runs through the slots in order)")
    _chain_arguments(mv)
    mv.add_argument("slot", type=int, metavar="N")
    mv.add_argument("to", type=int, metavar="TO")
    mv.set_defaults(func=cmd_fx_move)

    ed = fsub.add_parser("editor", help="open slot N's own plugin window (needs a display); its settings are "
                                        "saved when you close it")
    _chain_arguments(ed)
    ed.add_argument("slot", type=int, metavar="N")
    ed.set_defaults(func=cmd_fx_editor)

    st = fsub.add_parser("set", help="change slot N's parameters or wet/dry")
    _chain_arguments(st)
    st.add_argument("slot", type=int, metavar="N")
    st.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    st.add_argument("--mix", type=float, metavar="0..1")
    st.set_defaults(func=cmd_fx_set)
