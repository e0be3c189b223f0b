"""The app on a project whose stems moved (offscreen, pytest-qt): the message offers "Locate missing
stems…", the Stems tab's button finds them in the folder the producer picks, the timeline fills
again and Undo puts the old paths back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402


@pytest.fixture
def moved_demo(tmp_path) -> tuple[Path, Path]:
    """The demo project, analysed, copied without its stems: (project dir, where the stems are)."""
    from bridge.analysis.project import analyze_project
    from bridge.demo.song import generate_demo_song, write_demo_stems
    from bridge.project import load_project
    from bridge.project.create import new_project

    write_demo_stems(generate_demo_song(sample_rate=22050), tmp_path / "studio" / "stems")
    new_project(tmp_path / "studio" / "project", tmp_path / "studio" / "stems", name="demo")
    project, project_dir = load_project(tmp_path / "studio" / "project")
    analyze_project(project, project_dir)
    shutil.copytree(project_dir, tmp_path / "laptop" / "project")  # ../stems is not there
    return tmp_path / "laptop" / "project", tmp_path / "studio" / "stems"


def test_locate_missing_stems_finds_them_and_undo_puts_the_old_paths_back(qtbot, moved_demo, tmp_path, monkeypatch):
    from gui.app import create_app
    from gui.main_window import MainWindow

    project_dir, stems = moved_demo
    create_app(install_error_hook=False)
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(project_dir, watch=False)
    s = w.adapter.session
    names = {st.name for st in s.project.stems}
    assert s.missing_stems == names
    # the message says what happened and offers the fix as a button
    qtbot.waitUntil(lambda: w.messages.action.isVisible(), timeout=10_000)
    assert w.messages.action.text() == "Locate missing stems…" and w.stems.locate.isEnabled()
    assert not w.timeline.lanes

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(stems.parent))
    w.messages.action.click()  # as the producer does: the button, then the folder
    qtbot.waitUntil(lambda: not s.missing_stems, timeout=30_000)
    qtbot.waitUntil(lambda: len(w.timeline.lanes) == len(names), timeout=60_000)
    assert f"Found {len(names)} of {len(names)} missing files" in w.messages.text
    assert not w.stems.locate.isEnabled()
    assert all(Path(s.project_dir / st.path).resolve().parent == stems.resolve() for st in s.project.stems)

    w.undo_action.trigger()
    assert s.missing_stems == names
    qtbot.waitUntil(w.stems.locate.isEnabled, timeout=10_000)  # the panel hears it on the next tick
    w.close()
