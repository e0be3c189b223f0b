"""The producer's session in the real app on a real X server, step by step, with a screenshot after each.

    python benchmarks/app_walkthrough.py --out shots/ [--project DEMO_DIR] [--size 1280x800] [--no-wm]

Starts Xvfb (and openbox, a window manager, as on a desktop, unless --no-wm), opens the app with Qt's
xcb platform on a demo project (``--project``, else a fresh ``stembridge demo`` made in a temporary
folder), and does what a producer does: play, edit a mapping, fix the tempo (×2), give a section
another look, open Preferences (the Separation model row), open ZamComp's own window from the Effects
tab (when zam-plugins is installed) and export a 3-second clip. After each step it saves the whole X
screen (dialogs and plugin windows are windows of their own) as ``NN-step.png`` and prints one line:
what it did and what it checked (the undo label, the BPM readout, the section's look, the exported
file's duration from the decoded MP4). Exit status 1 when a check fails. Look at the pictures: this is
the check a test cannot make (clipped text, ugly or wrong layout).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def start_x(size: tuple[int, int], wm: bool) -> tuple[list[subprocess.Popen], str]:
    """Xvfb on a free display (it writes the number to a pipe), plus openbox when asked and installed."""
    if shutil.which("Xvfb") is None:
        raise SystemExit("no Xvfb here (Debian: apt install xvfb)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,), stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        display = ":" + pipe.readline().strip()
    started = [xvfb]
    if wm:
        if shutil.which("openbox") is None:
            print("no openbox here (Debian: apt install openbox): continuing without a window manager")
        else:
            started.append(subprocess.Popen(["openbox"], env={**os.environ, "DISPLAY": display},
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)  # a script, not a test: give the window manager a moment to take the screen
    return started, display


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    ap.add_argument("--project", type=Path, help="a demo project folder (copied; default: a fresh `stembridge demo`)")
    ap.add_argument("--size", default="1280x800", help="the app window's size (the X screen is 40 px larger)")
    ap.add_argument("--no-wm", action="store_true", help="no window manager (bare X)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stembridge-walk-"))
    project = work / "demo"
    if args.project:
        shutil.copytree(args.project, project)
        relink_copy(project, args.project)
    else:
        print("making the demo project (stembridge demo)…", flush=True)
        with open(work / "demo.log", "wb") as log:
            subprocess.run([sys.executable, "-m", "bridge", "demo", "--out", str(project), "-q"], check=True,
                           stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(REPO)})
    started, display = start_x((w + 40, h + 40), not args.no_wm)
    os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=str(work))  # settings of our own
    try:
        return walk(project, args.out, (w, h), work)
    finally:
        for proc in reversed(started):
            proc.terminate()
            proc.wait(10)


def relink_copy(copy: Path, original: Path) -> None:
    """Stems the copy no longer finds (paths like ../stems/x.wav, relative to the original folder)
    are found again beside the original, as a producer does with Locate missing stems."""
    from bridge.project import load_project, save_project
    from bridge.project.relink import apply_relink, describe_relink, missing_files, plan_relink

    project, copy_dir = load_project(copy)
    if missing_files(project, copy_dir):
        plan = plan_relink(project, copy_dir, Path(original).resolve().parent)
        save_project(apply_relink(project, copy_dir, plan.found), copy_dir)
        print("relinked the copy's stems: " + "; ".join(describe_relink(plan)), flush=True)


def walk(project: Path, out: Path, size: tuple[int, int], work: Path) -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.app import create_app
    from gui.main_window import MainWindow

    app = create_app(install_error_hook=False)
    window = MainWindow(settings=QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(*size)
    window.move(0, 0)
    window.show()
    failures: list[str] = []
    step = [0]

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait_until(cond, timeout_s: float, what: str) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            app.processEvents()
            if cond():
                return True
            time.sleep(0.02)
        failures.append(f"timed out waiting for {what}")
        return False

    def preview_settled() -> bool:
        st = window.adapter.session.preview_status()
        return st is None or (st.keyframes_total and not st.pass_active and st.keyframes_pending == 0)

    def shot(name: str, note: str, ok: bool = True) -> None:
        step[0] += 1
        pump(0.3)
        path = out / f"{step[0]:02d}-{name}.png"
        QApplication.primaryScreen().grabWindow(0).save(str(path))
        print(f"{'ok  ' if ok else 'FAIL'} {path.name}: {note}", flush=True)
        if not ok:
            failures.append(f"{name}: {note}")

    # 1. open the project
    t0 = time.monotonic()
    ok = window.open_project(project, watch=False)
    s = window.adapter.session
    ok = ok and wait_until(lambda: s.analysis is not None and window.timeline.lanes, 120, "the analysis")
    s.seek(s.analysis.duration_seconds * 0.42)
    wait_until(preview_settled, 120, "the preview")
    shot("open", f"{len(window.timeline.lanes)} lanes, platform {QApplication.platformName()}, "
                 f"{time.monotonic() - t0:.1f} s to a settled preview", ok and QApplication.platformName() == "xcb")

    # 2. play for two seconds
    before = window.transport.position.text()
    window.transport.toggle_play()
    pump(2.0)
    playing = window.transport.status.text()
    window.transport.toggle_play()
    pump(0.3)
    after = window.transport.position.text()
    shot("played", f"{before} → {after} ({playing!r}); message bar: {window.messages.text!r}", after != before)

    # 3. edit a mapping: the first row's amount, as a producer types it
    window.tabs.setCurrentWidget(window.mappings)
    pump(0.3)
    row = window.mappings.rows[0]
    old = row.amount.value()
    row.amount.setValue(round(old * 2 + 0.25, 3))
    pump(0.5)
    label = window.undo_action.text()
    shot("mapping", f"amount {old:g} → {row.amount.value():g}; Edit menu says {label!r}",
         label.startswith("Undo ") and "mappings[" not in label)

    # 4. fix the tempo: ×2
    bpm_before = s.analysis.tempo_bpm if hasattr(s.analysis, "tempo_bpm") else None
    readout_before = window.tempo_bar.readout.text()
    window.tempo_bar.double.click()
    wait_until(lambda: window.tempo_bar.readout.text() != readout_before, 60, "the tempo readout")
    wait_until(preview_settled, 120, "the preview after ×2")
    shot("tempo-x2", f"{readout_before!r} → {window.tempo_bar.readout.text()!r} (analysis said {bpm_before})")

    # 5. a section gets another look
    window.tabs.setCurrentWidget(window.sections)
    pump(0.3)
    table = window.sections.table
    look_col = table.columnCount() - 1
    row = min(1, table.rowCount() - 1)  # the second section (a one-section song: its only one)
    combo = table.cellWidget(row, look_col)
    choices = [combo.itemText(i) for i in range(combo.count())]
    new_look = next(c for c in choices[1:] if c != combo.currentText())
    if row < len(s.project.sections):  # watch it where it plays: the middle of the section
        section = s.project.sections[row]
        if section.unit == "seconds":
            end_s = section.end if section.end is not None else s.analysis.duration_seconds
            s.seek((section.start + end_s) / 2)
    combo.setCurrentText(new_look)
    wait_until(preview_settled, 120, "the preview after the look")
    got = s.project.sections[row].look
    shot("section-look", f"section {row + 1} ({s.project.sections[row].name}) look → {got}", got == new_look)

    # 6. Preferences: the separation model row
    dlg = window.open_preferences()
    dlg.move(60, 60)
    pump(0.5)
    shot("preferences", f"model: {dlg.model_label.text()!r}")
    dlg.reject()

    # 7. a plugin's own window from the Effects tab (ZamComp on the Bass stem)
    zam = Path("/usr/lib/vst3/ZamComp.vst3")
    if zam.exists():
        window.tabs.setCurrentWidget(window.effects)
        stem = s.project.stems[0].name
        window.effects.target.setCurrentText(stem)
        index = window.effects.add_effect(str(zam), "ZamComp")
        pump(1.0)
        window.effects.table.setCurrentCell(index, 0)
        window.effects.editor_button.click()
        editor = window.effects.editors[(stem, index)][0]
        wait_until(lambda: editor.opened.is_set(), 60, "the plugin window")
        pump(2.5)
        turned = ""
        if shutil.which("xdotool") and editor.running:  # turn its Ratio knob up with the mouse
            def xdo(*a: str) -> str:
                return subprocess.run(["xdotool", *a], capture_output=True, text=True).stdout.strip()

            wid = (xdo("search", "--onlyvisible", "--name", "Pedalboard").split() or [""])[0]
            if wid:
                xdo("mousemove", "--window", wid, "291", "65")
                xdo("mousedown", "1")
                for dy in range(8, 88, 8):
                    xdo("mousemove", "--window", wid, "291", str(65 - dy))
                xdo("mouseup", "1")
                turned = "; Ratio knob dragged up"
        pump(0.5)
        shot("plugin-window", f"ZamComp on {stem}: window {'open' if editor.running else 'closed: ' + str(editor.wait(1))}"
                              f"{turned}", editor.running)
        editor.close()
        wait_until(lambda: "edited in its window" in window.undo_action.text(), 60, "the window's state in the project")
        ratio = s.fx_chain(stem)[index].parameters.get("ratio")
        shot("plugin-closed", f"Edit menu says {window.undo_action.text()!r}; the slot's ratio is {ratio}",
             not turned or (ratio is not None and ratio > 4.5))

    # 8. export a 3-second clip
    dlg = window.open_export()
    dlg.move(60, 60)
    dlg.width_spin.setValue(640)
    dlg.height_spin.setValue(360)
    dlg.start.setValue(10.0)
    dlg.end.setValue(13.0)
    clip = work / "clip.mp4"
    dlg.out.setText(str(clip))
    dlg.export_button.click()
    pump(1.0)
    shot("exporting", dlg.eta.text())
    wait_until(lambda: dlg.result_path is not None or (dlg.worker is None and dlg.eta.text()), 300, "the export")
    wait_until(lambda: dlg.worker is None, 30, "the export thread")
    duration = None
    if dlg.result_path is not None:
        import av

        with av.open(str(clip)) as c:
            frames = sum(1 for _ in c.decode(c.streams.video[0]))
            duration = frames / float(c.streams.video[0].average_rate)
            has_audio = bool(c.streams.audio)
    shot("exported", f"{dlg.eta.text()}; decoded: {duration} s of video, audio {'yes' if duration and has_audio else 'no'}",
         duration is not None and abs(duration - 3.0) < 0.2)
    dlg.close()
    window.close()
    app.processEvents()
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
