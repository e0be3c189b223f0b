"""The app's DAW extras (pytest-qt, offscreen): "Import DAW markers" in the Sections tab, over the
sync connection to an emulated REAPER sending real UDP datagrams; the truth is REAPER's marker list
written here and the project file read back."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from bridge.project import load_project  # noqa: E402
from bridge.project.schema import Project, Section  # noqa: E402
from bridge.project.store import save_project  # noqa: E402

QUIET = dict(analyse=False, preview=False, watch=False, autosave=False, audio=False)


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


@pytest.fixture
def adapter(qtbot, tmp_path):
    from gui.app import create_app
    from gui.session_adapter import SessionAdapter

    create_app(install_error_hook=False)
    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="m", sections=[Section(name="Verse", start=3.0, prompt="ink", seed=9)]), d)
    a = SessionAdapter()
    a.open(d, **QUIET)
    yield a
    a.close()


def test_import_daw_markers_button_over_the_reaper_connection(adapter, qtbot):
    from gui.panels.sections import SectionEditor

    editor = SectionEditor(adapter)
    qtbot.addWidget(editor)
    messages = []
    adapter.message.connect(lambda level, text: messages.append((level, text)))
    # not following a DAW: the button says what to do and changes nothing
    editor.import_daw.click()
    assert messages[-1][0] == "error" and "follow" in messages[-1][1]
    sources = adapter.connect_sync("REAPER via OSC", "127.0.0.1:0")
    host, port = sources[0].address
    truth = [("Intro", 0.0), ("Verse", 8.5), ("Outro", 40.25)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        for i, (name, t) in enumerate(truth, start=1):
            daw.sendto(msg(f"/marker/{i}/name", name), (host, port))
            daw.sendto(msg(f"/marker/{i}/time", t), (host, port))
        daw.sendto(b"\x00garbage", (host, port))
        editor.import_daw.click()
        qtbot.waitUntil(lambda: [s.name for s in adapter.session.project.sections] == [n for n, _ in truth],
                        timeout=10_000)
    sections = adapter.session.project.sections
    assert [(s.start, s.unit) for s in sections] == [(t, "seconds") for _, t in truth]
    assert (sections[1].prompt, sections[1].seed) == ("ink", 9)  # same name: the prompt stays
    qtbot.waitUntil(lambda: editor.table.rowCount() == 3, timeout=5_000)  # the next tick refreshes the table
    adapter.session.save()
    assert [s.name for s in load_project(adapter.session.project_dir)[0].sections] == ["Intro", "Verse", "Outro"]
    adapter.session.undo()
    assert [s.name for s in adapter.session.project.sections] == ["Verse"]
    adapter.disconnect_sync()
