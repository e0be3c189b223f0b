"""A hosted plugin's own window on a real X server, turned with a real mouse.

Xvfb (with a window manager, openbox, as on a desktop, and without one), ZamComp's VST3 window opened
by :class:`bridge.plugins.editor.EditorWindow` in its child process, its Ratio knob dragged with
xdotool (XTEST: the X server delivers the drag to the plugin as it would a hand's), the window closed,
and what came back checked against the plugin itself: the slot's threshold went into the window and
came back, the ratio the drag set is what the plugin reports. Before the child tolerated X errors
every plugin window died at once here ("BadWindow … X_GetProperty … 0x0" from inside pedalboard's
``show_editor``), with or without a window manager.

Skips, naming the package, when Xvfb, xdotool, openbox (for the desktop case) or zam-plugins is
missing; .ci/run installs them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import start_xvfb

from bridge.project.schema import FxSlot

ZAMCOMP = Path("/usr/lib/vst3/ZamComp.vst3")
#: Where the Ratio knob is in ZamComp's window (zam-plugins 4.x, 800×107): its centre.
RATIO_KNOB_XY = (291, 65)


def _xdotool(display: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=30, check=check)


@pytest.mark.parametrize("wm", [None, "openbox"], ids=["bare-x", "openbox-desktop"])
def test_plugin_window_opens_on_x_and_a_mouse_drag_on_its_knob_comes_back(wm, tmp_path):
    needed = [("Xvfb", "xvfb"), ("xdotool", "xdotool")] + ([(wm, wm)] if wm else [])
    for tool, package in needed:
        if shutil.which(tool) is None:
            pytest.skip(f"no {tool} here (Debian: apt install {package})")
    if not ZAMCOMP.exists():
        pytest.skip("no ZamComp VST3 here (Debian: apt install zam-plugins)")
    import pedalboard

    from bridge.plugins.edit import make_slot
    from bridge.plugins.editor import EditorWindow

    default_ratio = float(pedalboard.load_plugin(str(ZAMCOMP)).ratio)
    slot = make_slot(str(ZAMCOMP), parameters={"threshold_db": -30.0})
    assert isinstance(slot, FxSlot)
    xvfb, display = start_xvfb()
    started = [xvfb]
    window = None
    try:
        if wm:
            log = tmp_path / f"{wm}.log"
            with open(log, "wb") as sink:
                started.append(subprocess.Popen([wm], env={**os.environ, "DISPLAY": display, "HOME": str(tmp_path)},
                                                stdout=sink, stderr=sink))
            for _ in range(300):  # the window manager answers for the desktop (EWMH) once it runs
                if _xdotool(display, "get_num_desktops", check=False).returncode == 0:
                    break
                assert started[-1].poll() is None, f"{wm} exited: {log.read_text()[-500:]}"
                time.sleep(0.1)
            else:
                pytest.fail(f"{wm} did not start on {display}: {log.read_text()[-500:]}")
        window = EditorWindow(slot, env={"DISPLAY": display})
        assert window.opened.wait(60) and window.running, window.wait(1)
        found: list[str] = []
        for _ in range(300):  # until the window is mapped, or the child has died
            found = _xdotool(display, "search", "--onlyvisible", "--name", "Pedalboard", check=False).stdout.split()
            if found or not window.running:
                break
            time.sleep(0.1)
        assert found, f"no plugin window on the X server: {window.wait(5)}"
        wid = found[0]
        if wm:  # the window manager frames and places the window: drag once it is active and still
            _xdotool(display, "windowactivate", "--sync", wid)
        geometry = ""
        for _ in range(50):  # placed: the same position and size twice in a row
            now = _xdotool(display, "getwindowgeometry", wid).stdout
            if now == geometry:
                break
            geometry = now
            time.sleep(0.2)
        x, y = RATIO_KNOB_XY
        _xdotool(display, "mousemove", "--window", wid, str(x), str(y))
        _xdotool(display, "mousedown", "1")
        for dy in range(8, 88, 8):  # drag up: the knob turns clockwise
            _xdotool(display, "mousemove", "--window", wid, str(x), str(y - dy))
        _xdotool(display, "mouseup", "1")
        assert window.running, "the plugin window closed by itself (the child died)"
        window.close()
        result = window.wait(60)
    finally:
        if window is not None:
            window.kill()
        for proc in reversed(started):
            proc.terminate()
            proc.wait(10)
    assert result is not None and result.error is None, result
    assert result.parameters["threshold_db"] == pytest.approx(-30.0)  # the slot's setting was in the window
    assert "ratio" in result.changed and result.parameters["ratio"] > default_ratio + 1.0
    # the state that came back is the plugin's: loaded into a fresh ZamComp it reads the same ratio
    fresh = pedalboard.load_plugin(str(ZAMCOMP))
    fresh.raw_state = base64.b64decode(result.raw_state)
    fresh.process(np.zeros((1, 256), dtype=np.float32), 48000, reset=True)  # DPF applies state at a block (mono)
    assert float(fresh.ratio) == pytest.approx(result.parameters["ratio"], rel=1e-3)
