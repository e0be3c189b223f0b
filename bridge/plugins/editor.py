"""A hosted plugin's own editor window, shown by a child process so the app never freezes.

pedalboard's ``show_editor`` blocks the thread it runs on (which must be a main thread) until the
window closes. The app's main thread belongs to Qt, so :func:`open_editor` starts ``_editor.py`` in a
child process, which loads the plugin with the slot's state and shows its window; when the window
closes (by the producer, or :meth:`EditorWindow.close`), the child reads back the plugin's full state
and the named values, and ``on_done`` gets them as an :class:`EditorResult`.

On X11 the child reports X protocol errors instead of letting Xlib exit on the first one: pedalboard's
``show_editor`` raises a harmless BadWindow before its window exists, which killed every plugin window
(``_editor.tolerate_x_errors``; tests/test_plugin_window.py opens ZamComp on Xvfb and turns a knob).

Without a display (Linux with no ``DISPLAY``: a server or SSH session) there is no window to show;
:func:`display_problem` says so in a sentence and :func:`open_editor` raises PluginError with it.
Built-in effects have no window of their own: the generic parameter panel edits them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import PluginError
from bridge.project.schema import FxSlot

_EDITOR_SCRIPT = Path(__file__).with_name("_editor.py")
#: Seconds a plugin may take to load before its window is given up on.
OPEN_TIMEOUT_S = 30.0


@dataclass
class EditorResult:
    """What the window left: ``error`` is None when the state was read back."""

    raw_state: str | None = None
    parameters: dict = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    error: str | None = None


def display_problem(platform: str = sys.platform, environ: dict | None = None) -> str | None:
    """None when a plugin window can be shown here; else why not, in a sentence naming the way out."""
    env = os.environ if environ is None else environ
    if platform == "darwin" or platform.startswith("win"):
        return None
    if env.get("DISPLAY"):
        return None
    wayland = " (plugin windows need X11: this Wayland session has no XWayland DISPLAY)" \
        if env.get("WAYLAND_DISPLAY") else ""
    return ("no display to show the plugin's own window on: DISPLAY is not set" + wayland +
            "; edit its parameters in the Effects panel or with `stembridge fx set`, or run stembridge "
            "in a desktop session")


def editor_problem(slot: FxSlot, environ: dict | None = None) -> str | None:
    """None when ``slot``'s own window can be opened here; else why not (built-in, missing, no display)."""
    if slot.is_builtin:
        return f"{slot.label} is a built-in effect: it has no window of its own; its parameters are in the panel"
    from bridge.plugins.chain import locate_plugin

    if locate_plugin(slot) is None:
        return f"{slot.label} is not installed on this machine, so its window cannot be opened"
    return display_problem(environ=environ)


class EditorWindow:
    """One plugin window in a child process. ``on_done`` is called once, from a reader thread."""

    def __init__(self, slot: FxSlot, on_done: Callable[[EditorResult], None] | None = None,
                 *, env: dict | None = None) -> None:
        from bridge.plugins.chain import locate_plugin

        path = locate_plugin(slot)
        self.label = slot.label
        self._on_done = on_done
        self._result: EditorResult | None = None
        self._finished = threading.Event()
        self.opened = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, str(_EDITOR_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, encoding="utf-8", bufsize=1,
            env={**os.environ, **(env or {})},
        )
        request = {"path": str(path), "name": slot.name, "raw_state": slot.raw_state,
                   "parameters": dict(slot.parameters)}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        threading.Thread(target=self._read, daemon=True, name=f"plugin-editor-{slot.label}").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        result = None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("open"):
                self.opened.set()
            elif msg.get("done"):
                result = EditorResult(raw_state=msg["raw_state"], parameters=msg.get("parameters", {}),
                                      changed=msg.get("changed", []))
            elif "error" in msg:
                result = EditorResult(error=f"{self.label}'s window failed: {msg['error']}")
        code = self.proc.wait()
        if result is None:
            result = EditorResult(error=f"{self.label}'s window crashed (exit status {code}); the slot "
                                        "keeps its settings from before the window opened")
        self._finish(result)

    def _finish(self, result: EditorResult) -> None:
        self._result = result
        self._finished.set()
        self.opened.set()  # a waiter for "open" wakes up on a failure too
        if self._on_done is not None:
            self._on_done(result)

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def close(self) -> None:
        """Close the window (its state is read back and reported as when the producer closes it)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except OSError:
                pass

    def wait(self, timeout: float | None = None) -> EditorResult | None:
        """The result once the window has closed (None when ``timeout`` passes first)."""
        if not self._finished.wait(timeout):
            return None
        return self._result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def open_editor(slot: FxSlot, on_done: Callable[[EditorResult], None] | None = None, *,
                env: dict | None = None) -> EditorWindow:
    """Show ``slot``'s own plugin window (non-blocking). PluginError when it cannot be shown here."""
    problem = editor_problem(slot, environ={**os.environ, **(env or {})})
    if problem is not None:
        raise PluginError(problem)
    return EditorWindow(slot, on_done, env=env)
