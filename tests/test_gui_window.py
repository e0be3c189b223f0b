"""The app in a real X window: Xvfb and Qt's xcb platform plugin, as on a Linux desktop.

The rest of the GUI tests run offscreen in-process (pytest-qt); this one starts the app as a user
does (`stembridge gui PROJECT`) in its own process on an X server, on a fresh demo project (the
shader engine's look where OpenGL works), and checks what it drew: the window at its size, the
preview showing a picture, the Qt platform really xcb. Skips with the packages to install when
Xvfb or the xcb plugin's libraries are missing (.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

XCB_LIBS = ("xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0 "
            "libxcb-xkb1 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-cursor0")


def test_the_app_opens_in_a_real_x_window_and_draws_the_demo(tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.skip(f"no Xvfb here (Debian: apt install {XCB_LIBS})")
    from PySide6.QtGui import QImage

    from bridge.demo.song import generate_demo_song, write_demo_stems
    from bridge.project.create import new_project

    write_demo_stems(generate_demo_song(), tmp_path / "stems")
    project_dir = new_project(tmp_path / "project", tmp_path / "stems", name="demo").project_dir
    out = tmp_path / "window.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=str(REPO), HOME=str(tmp_path))  # no recent-projects of ours
    run = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "bridge", "gui",
                          str(project_dir), "--screenshot", str(out), "--size", "1280x800"],
                         env=env, capture_output=True, text=True, timeout=240)
    if "could not be initialized" in run.stderr or "could not connect to display" in run.stderr:
        pytest.skip(f"Qt's xcb plugin cannot start here (Debian: apt install {XCB_LIBS}): {run.stderr[-300:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Qt platform xcb" in run.stderr  # a real X window, not the offscreen plugin
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 800)
    rgb = np.frombuffer(image.convertToFormat(QImage.Format.Format_RGB888).constBits(), np.uint8)
    rgb = rgb.reshape(800, image.convertToFormat(QImage.Format.Format_RGB888).bytesPerLine())[:, :1280 * 3]
    rgb = rgb.reshape(800, 1280, 3)
    assert rgb.std() > 20  # widgets, lanes, text: not a blank or single-colour window
    preview = rgb[120:450, 760:1270]  # the preview's place, right of the timeline
    assert preview.max() > 60 and preview.std() > 5  # a picture in it, not an empty frame
