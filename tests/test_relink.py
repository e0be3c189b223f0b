"""Moved stems: one error that names every missing file and the fix, and relink (CLI, Session) that
finds them again by content or by name, refuses another song's file of the same name, and changes
nothing else in the project. Checked against the files the test moved itself and a click track's
known tempo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.analysis.project import analyze_project
from bridge.errors import AudioError, Cancelled, ProjectError
from bridge.jobs import CancelToken
from bridge.project import load_project
from bridge.project.create import new_project
from bridge.project.relink import apply_relink, missing_files, plan_relink, stem_records
from bridge.session import Session
from tests.conftest import click_track, sine, write_wav

SR = 22050
TEMPO_BPM = 132.0


def _song(folder: Path, seconds: float = 8.0) -> dict[str, Path]:
    """A click track (drums) and a bass sine: the drums' tempo is the truth the analysis must find."""
    drums, _ = click_track(TEMPO_BPM, seconds, SR)
    return {"drums": write_wav(folder / "Drums.wav", drums, SR),
            "bass": write_wav(folder / "Bass.wav", sine(55.0, seconds, SR, amplitude=0.3), SR)}


@pytest.fixture
def moved(tmp_path):
    """A project analysed once, whose stems folder was then renamed: (project_dir, new stems folder)."""
    stems = tmp_path / "Bounces"
    _song(stems)
    project_dir = new_project(tmp_path / "proj", stems).project_dir
    project, _ = load_project(project_dir)
    analyze_project(project, project_dir)  # records what each stem's file is
    assert set(stem_records(project_dir)) == {s.name for s in project.stems}
    new_home = tmp_path / "Moved" / "Song A" / "Bounces"
    new_home.parent.mkdir(parents=True)
    shutil.move(str(stems), str(new_home))
    return project_dir, new_home


def _stems_by_file(project, project_dir) -> dict[str, str]:
    from bridge.project.store import resolve_stem_path

    return {resolve_stem_path(s.path, project_dir).name: s.name for s in project.stems}


def test_a_missing_file_names_every_stem_and_the_fix(moved):
    project_dir, _ = moved
    project, _ = load_project(project_dir)
    with pytest.raises(AudioError) as e:
        analyze_project(project, project_dir)
    text = str(e.value)
    for s in project.stems:
        assert s.name in text
    assert "stembridge relink" in text and str(project_dir) in text


def test_relink_finds_moved_and_renamed_stems_and_the_analysis_works_again(moved, tmp_path):
    project_dir, new_home = moved
    # one stem also renamed on the way ("Bass.wav" -> "02 Bass (final).wav"): found by its content
    (new_home / "Bass.wav").rename(new_home / "02 Bass (final).wav")
    project, _ = load_project(project_dir)
    plan = plan_relink(project, project_dir, tmp_path / "Moved")
    assert plan.complete and not plan.changed
    assert {p.name for p in plan.found.values()} == {"Drums.wav", "02 Bass (final).wav"}
    relinked = apply_relink(project, project_dir, plan.found)
    assert not missing_files(relinked, project_dir)
    # only the paths changed (and the stems folder, which had gone): roles, mappings, gains stay
    strip = lambda p: {k: v for k, v in p.model_dump().items() if k not in ("stems", "stems_dir")}  # noqa: E731
    assert strip(relinked) == strip(project)
    assert [(s.name, s.role, s.gain_db, s.fx) for s in relinked.stems] == \
        [(s.name, s.role, s.gain_db, s.fx) for s in project.stems]
    assert not any(s.external for s in relinked.stems)  # they are in the (new) stems folder
    grid = analyze_project(relinked, project_dir).beat_grid
    assert grid.tempo_bpm == pytest.approx(TEMPO_BPM, rel=0.02)


def test_another_songs_file_of_the_same_name_is_not_taken(moved, tmp_path):
    project_dir, new_home = moved
    other = tmp_path / "Other song"
    drums, _ = click_track(90.0, 13.0, SR)  # same name, another length
    write_wav(other / "Drums.wav", drums, SR)
    (new_home / "Drums.wav").unlink()
    project, _ = load_project(project_dir)
    plan = plan_relink(project, project_dir, tmp_path)
    drums_name = _stems_by_file(project, project_dir)["Drums.wav"]
    assert drums_name in plan.not_found and plan.rejected[drums_name] == [other / "Drums.wav"]
    assert not plan.complete
    assert [p.name for p in plan.found.values()] == ["Bass.wav"]


def test_a_rebounced_stem_of_the_same_length_is_taken_and_flagged(moved):
    project_dir, new_home = moved
    drums, _ = click_track(TEMPO_BPM, 8.0, SR, first_beat_s=0.1)  # re-bounced: other content, same length
    write_wav(new_home / "Drums.wav", drums, SR)
    project, _ = load_project(project_dir)
    plan = plan_relink(project, project_dir, new_home)
    drums_name = _stems_by_file(project, project_dir)["Drums.wav"]
    assert plan.found[drums_name] == (new_home / "Drums.wav").resolve() and plan.changed == {drums_name}


def test_copies_in_two_songs_folders_prefer_the_one_whose_folders_match(moved, tmp_path):
    project_dir, new_home = moved
    project, _ = load_project(project_dir)
    # Without a record of the files (a project never analysed) only names and folders can decide.
    shutil.rmtree(project_dir / ".stembridge")
    twin = tmp_path / "Moved" / "Song B" / "Stems"
    shutil.copytree(new_home, twin)
    plan = plan_relink(project, project_dir, tmp_path / "Moved")
    assert all(p.parent == new_home.resolve() for p in plan.found.values())  # "…/Bounces" as before
    twin2 = tmp_path / "Moved" / "Song C" / "Bounces"
    shutil.copytree(new_home, twin2)  # now two folders named Bounces: a tie is not guessed
    plan = plan_relink(project, project_dir, tmp_path / "Moved")
    assert not plan.found and len(plan.ambiguous) == 2


def test_relink_refuses_a_file_and_stops_when_cancelled(moved, tmp_path):
    project_dir, new_home = moved
    project, _ = load_project(project_dir)
    with pytest.raises(ProjectError, match="not a folder"):
        plan_relink(project, project_dir, new_home / "Drums.wav")
    crowd = tmp_path / "crowd"
    crowd.mkdir()
    for i in range(1200):
        (crowd / f"{i}.txt").write_text("x")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        plan_relink(project, project_dir, crowd, cancel=token)


def test_cli_relink_saves_only_the_paths_and_says_what_it_did(moved, tmp_path):
    project_dir, new_home = moved
    before = json.loads((project_dir / "stembridge.json").read_text())
    cmd = [sys.executable, "-m", "bridge", "relink", str(project_dir), str(tmp_path / "Moved")]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert json.loads((project_dir / "stembridge.json").read_text()) == before
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Drums.wav" in out.stdout and "saved" in out.stdout
    after = json.loads((project_dir / "stembridge.json").read_text())
    assert {k: v for k, v in after.items() if k not in ("stems", "stems_dir")} == \
        {k: v for k, v in before.items() if k not in ("stems", "stems_dir")}
    again = subprocess.run([sys.executable, "-m", "bridge", "analyze", str(project_dir), "--json", "-q"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tempo_bpm"] == pytest.approx(TEMPO_BPM, rel=0.02)
    # a folder without them: exit 1 and the stems named
    (project_dir / "stembridge.json").write_text(json.dumps(before))
    empty = tmp_path / "empty"
    empty.mkdir()
    miss = subprocess.run([sys.executable, "-m", "bridge", "relink", str(project_dir), str(empty)],
                          capture_output=True, text=True, timeout=120)
    assert miss.returncode == 1 and "not in" in miss.stdout


def test_session_relink_is_one_undoable_edit_and_the_stems_come_back(moved, tmp_path):
    project_dir, new_home = moved
    with Session.open(project_dir, watch=False, autosave=False, preview=False, audio=False) as s:
        names = {st.name for st in s.project.stems}
        assert s.missing_stems == names
        plan = s.relink_stems(tmp_path / "Moved")
        assert plan.complete and s.missing_stems == frozenset()
        assert s.undo_label == "locate 2 missing files"
        assert s.wait_for_analysis(timeout_s=120)
        assert s.analysis is not None and set(s.analysis.stems) >= names
        assert s.analysis.beat_grid.tempo_bpm == pytest.approx(TEMPO_BPM, rel=0.02)
        s.undo()  # back to the old paths: missing again
        assert s.missing_stems == names
        s.redo()
        assert s.missing_stems == frozenset()
        s.save()
    project, _ = load_project(project_dir)
    assert not missing_files(project, project_dir)


def test_nothing_missing_changes_nothing(tmp_path):
    _song(tmp_path / "stems")
    project_dir = new_project(tmp_path / "proj", tmp_path / "stems").project_dir
    project, _ = load_project(project_dir)
    plan = plan_relink(project, project_dir, tmp_path)
    assert plan.complete and not plan.found
    assert apply_relink(project, project_dir, plan.found) == project


def test_a_moved_tempo_map_is_found_with_the_stems(moved, tmp_path):
    from bridge.project.relink import TEMPO_MAP_KEY
    from bridge.project.store import resolve_stem_path

    project_dir, new_home = moved
    project, _ = load_project(project_dir)
    # the DAW's tempo track sat beside the bounces, and moved with them
    (new_home / "Song tempo.mid").write_bytes(b"MThd")  # found by name; the tempo loader reads it later
    with_map = project.model_copy(update={"tempo": project.tempo.model_copy(update={
        "source": "midi_file", "midi_file": "../Bounces/Song tempo.mid"})})
    plan = plan_relink(with_map, project_dir, tmp_path / "Moved")
    assert plan.found[TEMPO_MAP_KEY] == (new_home / "Song tempo.mid").resolve() and plan.complete
    relinked = apply_relink(with_map, project_dir, plan.found)
    assert resolve_stem_path(relinked.tempo.midi_file, project_dir) == (new_home / "Song tempo.mid").resolve()
    assert not relinked.tempo.midi_file_external  # it is in the stems folder now
    assert not missing_files(relinked, project_dir)
