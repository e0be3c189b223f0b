"""Child process of the plugin scan: load each plugin bundle named on stdin and describe it.

Run as a script (``python _probe.py``), never imported by stembridge: it imports only pedalboard, so
a plugin that crashes or hangs while loading takes down this process, not the app. Protocol, one
JSON object per line on the stdout it was started with:

    {"start": PATH}                      about to load PATH (the parent times this one)
    {"done": PATH, "plugins": [...]}     PATH loaded; one description per plugin in the bundle
    {"done": PATH, "error": "..."}       pedalboard refused PATH (not a plugin, wrong architecture…)

Plugins print to stdout themselves, so the protocol gets its own copy of the stdout descriptor and
descriptor 1 is pointed at stderr before any plugin is loaded.
"""

from __future__ import annotations

import json
import os
import sys


def _describe(plugin) -> dict:
    params = []
    for key, p in plugin.parameters.items():
        lo, hi, step = p.range
        params.append({
            "name": key, "label": p.name, "units": getattr(p, "label", None) or "",
            "min": lo, "max": hi, "step": step,
            "values": [str(v) for v in (p.valid_values or [])][:64] if p.type is str else None,
            "default": _plain(getattr(plugin, key, None)),
        })
    return {
        "name": plugin.name,
        "manufacturer": getattr(plugin, "manufacturer_name", "") or "",
        "category": getattr(plugin, "category", "") or "",
        "version": getattr(plugin, "version", "") or "",
        "is_instrument": bool(getattr(plugin, "is_instrument", False)),
        "latency_samples": int(getattr(plugin, "reported_latency_samples", 0) or 0),
        "parameters": params,
    }


def _plain(value):
    for kind in (bool, float, str):
        if isinstance(value, kind):
            return kind(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value) if value is not None else None


def probe(path: str) -> dict:
    import pedalboard

    cls = pedalboard.VST3Plugin
    if path.rstrip("/").lower().endswith(".component"):
        cls = getattr(pedalboard, "AudioUnitPlugin", None)
        if cls is None:
            return {"done": path, "error": "Audio Units load on macOS only"}
    try:
        names = list(cls.get_plugin_names_for_file(path))
        plugins = [_describe(cls(path, plugin_name=name) if len(names) > 1 else cls(path))
                   for name in names]
    except Exception as e:  # noqa: BLE001 - every refusal is reported to the parent
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return {"done": path, "error": text[:300]}
    return {"done": path, "plugins": plugins}


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever plugins print goes to stderr
    sys.stdout = sys.stderr
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        out.write(json.dumps({"start": path}) + "\n")
        out.flush()
        out.write(json.dumps(probe(path)) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
