"""Child process that shows one hosted plugin's own editor window (pedalboard's ``show_editor``).

Run as a script (``python _editor.py``), never imported by stembridge: ``show_editor`` blocks the
main thread it is called on until the window closes, so the app runs it here and stays responsive
(and a plugin that crashes in its UI takes down this process only). Imports only pedalboard.

Protocol: the parent writes one JSON line ``{"path", "name", "raw_state", "parameters"}`` and may
later write ``close`` (or close stdin) to close the window. This process answers, one JSON object a
line on the stdout it was started with (descriptor 1 is pointed at stderr, plugins print):

    {"open": true}                                   the plugin loaded; its window is being shown
    {"done": true, "raw_state": B64, "parameters": {...}, "changed": [...]}   the window closed
    {"error": "..."}                                 it could not load / show / read back

``parameters``: the named values the slot had, read back from the plugin, plus every parameter
whose value the window changed (``changed``), so the project shows what was done in the window.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading

#: The host's settings some plugins expose as parameters (bridge.plugins.params.HOST_PARAMETERS).
_HOST_PARAMETERS = frozenset({"buffer_size_frames", "sample_rate_frames"})


def _value(plugin, key: str):
    v = getattr(plugin, key)
    for kind in (bool, str):
        if isinstance(v, kind):
            return kind(v)
    p = plugin.parameters[key]
    if p.type is bool:
        return bool(v)
    if p.type is str:
        return str(v)
    return float(v)


def _settle(plugin) -> None:
    """One silent block: DPF plugins (the Zam ones) apply parameter changes at the next block."""
    import numpy as np

    try:
        plugin.process(np.zeros((2, 256), dtype=np.float32), 48000, reset=True)
    except ValueError:
        plugin.process(np.zeros((1, 256), dtype=np.float32), 48000, reset=True)


def tolerate_x_errors() -> list[tuple[int, int, int]] | None:
    """On X11, report X protocol errors instead of exiting; returns the list they are added to.

    Xlib's default error handler prints "X Error of failed request" and exits the process. Inside
    ``show_editor`` pedalboard's JUCE asks for a property of window 0 before its window exists
    (BadWindow, X_GetProperty; pedalboard issue #444 is the same family), so every plugin window died
    at once, with or without a window manager. JUCE's own handler, where it installs one, logs and
    carries on, which is what this does: the window then opens and works. Written with ctypes because
    no maintained binding exposes XSetErrorHandler alone; None where there is no libX11 (macOS, Windows).
    """
    import ctypes
    import ctypes.util

    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return None
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    xlib = ctypes.CDLL(name)

    class XErrorEvent(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("display", ctypes.c_void_p), ("resourceid", ctypes.c_ulong),
                    ("serial", ctypes.c_ulong), ("error_code", ctypes.c_ubyte), ("request_code", ctypes.c_ubyte),
                    ("minor_code", ctypes.c_ubyte)]

    errors: list[tuple[int, int, int]] = []

    def on_error(_display, event) -> int:
        e = event.contents
        if len(errors) < 100:  # a window that errs on every repaint must not grow this forever
            errors.append((int(e.error_code), int(e.request_code), int(e.resourceid)))
            print(f"X error {e.error_code} (request {e.request_code}, resource {e.resourceid:#x}) ignored",
                  file=sys.stderr)
        return 0

    handler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(XErrorEvent))(on_error)
    xlib.XSetErrorHandler.restype = ctypes.c_void_p
    xlib.XSetErrorHandler(handler)
    _KEEP_ALIVE.append(handler)  # Xlib keeps the pointer: the callback must outlive this function
    return errors


_KEEP_ALIVE: list = []


def run(request: dict, out, commands=None) -> None:
    """Show the window; ``commands``: the parent's lines (default stdin), ``close`` or EOF closes it."""
    import pedalboard

    path, name = request["path"], request.get("name")
    plugin = pedalboard.load_plugin(path, plugin_name=name) if name else pedalboard.load_plugin(path)
    if request.get("raw_state"):
        plugin.raw_state = base64.b64decode(request["raw_state"])
    named = dict(request.get("parameters") or {})
    for key, value in named.items():
        setattr(plugin, key, value)
    _settle(plugin)
    before = {key: _value(plugin, key) for key in plugin.parameters}

    close = threading.Event()

    def listen() -> None:  # "close" or EOF from the parent closes the window
        for line in commands if commands is not None else sys.stdin:
            if line.strip() == "close":
                break
        close.set()

    threading.Thread(target=listen, daemon=True).start()
    out.write(json.dumps({"open": True}) + "\n")
    out.flush()
    plugin.show_editor(close)
    _settle(plugin)
    after = {key: _value(plugin, key) for key in plugin.parameters}
    changed = [key for key in after if after[key] != before[key] and key not in _HOST_PARAMETERS]
    parameters = {key: after[key] for key in [*named, *changed] if key in after}
    out.write(json.dumps({"done": True, "raw_state": base64.b64encode(bytes(plugin.raw_state)).decode("ascii"),
                          "parameters": parameters, "changed": changed}) + "\n")
    out.flush()


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        request = json.loads(sys.stdin.readline())
        tolerate_x_errors()
        run(request, out)
    except Exception as e:  # noqa: BLE001 - every failure is reported to the parent
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        out.write(json.dumps({"error": text[:300]}) + "\n")
        out.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
