"""Project schema and store: validation names the field and the fix; saves are atomic."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from bridge.errors import ProjectError
from bridge.project import (
    Mapping,
    Project,
    RenderSettings,
    Section,
    StemSpec,
    load_project,
    parse_fps,
    resolve_stem_path,
    save_project,
)


def _project() -> Project:
    return Project(
        name="Song",
        stems=[StemSpec(name="Drums", path="stems/Song Drums.wav", role="drums", gain_db=-3.0)],
        sections=[Section(name="intro", start=0, end=16, unit="beats", prompt="fog", seed=3)],
        mappings=[Mapping(source="drums.onset", target="flash", amount=0.8, release_ms=200)],
        render=RenderSettings(width=640, height=360, fps="30000/1001"),
    )


def test_round_trip_is_exact(tmp_path):
    p = _project()
    path = save_project(p, tmp_path)
    loaded, folder = load_project(tmp_path)
    assert loaded == p
    assert folder == tmp_path.resolve()
    # the file is plain JSON with the schema version, readable by other tools
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["render"]["fps"] == "30000/1001"
    # saving again gives byte-identical output (stable diffs in version control)
    before = path.read_bytes()
    save_project(loaded, tmp_path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("value", "expected"), [
    (30, Fraction(30)), ("30000/1001", Fraction(30000, 1001)), (29.97, Fraction(30000, 1001)),
    ("23.976", Fraction(24000, 1001)), ("25", Fraction(25)), (59.94, Fraction(60000, 1001)),
])
def test_fps_is_exact_rational(value, expected):
    assert parse_fps(value) == expected


@pytest.mark.parametrize("bad", ["abc", 0, -30, "1/0", 1000, None])
def test_bad_fps_names_the_value(bad):
    with pytest.raises(ValueError, match="fps"):
        parse_fps(bad)


def test_invalid_fields_are_named_with_the_fix(tmp_path):
    save_project(_project(), tmp_path)
    f = tmp_path / "stembridge.json"
    data = json.loads(f.read_text())
    data["stems"][0]["gain_db"] = 99
    data["mappings"][0]["target"] = "wobble"
    data["render"]["width"] = 641
    f.write_text(json.dumps(data))
    with pytest.raises(ProjectError) as err:
        load_project(tmp_path)
    msg = str(err.value)
    assert "stems[0].gain_db" in msg and "99" in msg
    assert "mappings[0].target" in msg and "'wobble'" in msg and "zoom" in msg  # lists valid targets
    assert "render.width" in msg and "642" in msg  # the fix: the next even size


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"name": "x"}', "schema_version"),
    ('{"schema_version": 99}', "newer"),
    ("[" * 100_000 + "]" * 100_000, "nested or too large"),  # was a RecursionError traceback
    ('{"schema_version": 1, "stems": ' + "[" * 5000 + "]" * 5000 + "}", "stembridge did not change it"),
])
def test_broken_files_give_clear_errors(tmp_path, content, needle):
    (tmp_path / "stembridge.json").write_text(content)
    with pytest.raises(ProjectError, match=needle):
        load_project(tmp_path)
    assert (tmp_path / "stembridge.json").read_text() == content  # the file is untouched


def test_missing_project_says_how_to_create_one(tmp_path):
    with pytest.raises(ProjectError, match="stembridge new"):
        load_project(tmp_path / "nowhere")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    save_project(_project(), tmp_path)
    f = tmp_path / "stembridge.json"
    before = f.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    changed = _project().model_copy(update={"name": "Changed"})
    with pytest.raises(OSError):
        save_project(changed, tmp_path)
    assert f.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["stembridge.json"]  # no temp file left


def test_duplicate_stem_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Project(stems=[StemSpec(name="A", path="a.wav"), StemSpec(name="A", path="b.wav")])


def test_mapping_source_and_section_checks():
    with pytest.raises(ValueError, match="stem.feature"):
        Mapping(source="drums", target="zoom")
    with pytest.raises(ValueError, match="after its start"):
        Section(start=10, end=5)
    with pytest.raises(ValueError, match="clamp"):
        Mapping(source="drums.rms", target="zoom", clamp=(1.0, 0.0))


def test_copy_project_keeps_stems_and_cache_and_leaves_the_original(tmp_path):
    from bridge.project.store import copy_project

    (tmp_path / "stems").mkdir()
    (tmp_path / "stems" / "drums.wav").write_bytes(b"RIFF-drums")
    src = tmp_path / "song"
    (src / "inside").mkdir(parents=True)
    (src / "inside" / "bass.wav").write_bytes(b"RIFF-bass")
    (src / "tempo.mid").write_bytes(b"MThd")
    project = Project(
        name="song",
        stems=[StemSpec(name="Drums", path="../stems/drums.wav", role="drums"),
               StemSpec(name="Bass", path="inside/bass.wav", role="bass")],
        stems_dir="../stems",
        tempo={"source": "midi_file", "midi_file": "tempo.mid"},
    )
    save_project(project, src)
    analysis = src / ".stembridge" / "cache" / "analysis"
    analysis.mkdir(parents=True)
    (analysis / "stem.npz").write_bytes(b"features")
    before = (src / "stembridge.json").read_text()

    dest = copy_project(src, tmp_path / "elsewhere" / "song copy")

    copied, copied_dir = load_project(dest)
    assert copied_dir == (tmp_path / "elsewhere" / "song copy").resolve()
    assert [resolve_stem_path(s.path, copied_dir) for s in copied.stems] == [
        (tmp_path / "stems" / "drums.wav").resolve(), (src / "inside" / "bass.wav").resolve()]
    assert resolve_stem_path(copied.tempo.midi_file, copied_dir) == (src / "tempo.mid").resolve()
    assert resolve_stem_path(copied.stems_dir, copied_dir) == (tmp_path / "stems").resolve()
    assert (dest / ".stembridge" / "cache" / "analysis" / "stem.npz").read_bytes() == b"features"
    assert [s.external for s in copied.stems] == [False, True]  # bass was inside the old project
    assert (copied.model_dump(exclude={"stems", "stems_dir", "tempo"})
            == project.model_dump(exclude={"stems", "stems_dir", "tempo"}))
    # the original is untouched
    assert (src / "stembridge.json").read_text() == before
    assert load_project(src)[0] == project
    # never into the project itself, nor over files
    with pytest.raises(ProjectError, match="itself"):
        copy_project(src, src)
    with pytest.raises(ProjectError, match="not an empty folder"):
        copy_project(src, dest)


def test_save_as_copies_a_cache_the_preview_is_writing_into(tmp_path, monkeypatch):
    """The app's preview keeps writing its cache (hidden ``.NAME.partial.npy`` files renamed into
    place, old frames evicted) while Save As copies it: a file half written or gone when its turn
    comes is left out, never a failed Save As (shutil.Error before)."""
    import shutil

    from bridge.fsutil import PendingFile
    from bridge.project.store import copy_project

    src = tmp_path / "song"
    save_project(Project(name="song"), src)
    frames = src / ".stembridge" / "cache" / "preview" / "c8"
    frames.mkdir(parents=True)
    for i in range(3):
        (frames / f"frame{i}.npy").write_bytes(b"frame%d" % i)
    writing = PendingFile(frames / "frame9.npy")  # the preview is writing this one right now
    writing.tmp.write_bytes(b"half")
    real_copy2 = shutil.copy2

    def evicted_meanwhile(src_path, dst_path, **kw):  # frame1 is evicted between listing and copying
        if src_path.endswith("frame1.npy"):
            os.remove(src_path)
        return real_copy2(src_path, dst_path, **kw)

    monkeypatch.setattr(shutil, "copy2", evicted_meanwhile)
    dest = copy_project(src, tmp_path / "copy")
    copied = sorted(p.name for p in (dest / ".stembridge" / "cache" / "preview" / "c8").iterdir())
    assert copied == ["frame0.npy", "frame2.npy"]
    assert (dest / ".stembridge" / "cache" / "preview" / "c8" / "frame2.npy").read_bytes() == b"frame2"
    writing.abort()


def _write_project(folder, stems, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = Project(name="shared", **fields).model_dump(mode="json")
    data["stems"] = stems
    (folder / "stembridge.json").write_text(json.dumps(data))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "outside the stems folder"])
def test_stem_paths_that_leave_the_project_and_stems_folders_are_refused(tmp_path, kind):
    """A shared project must not make stembridge decode (and mux into a video) any file on this
    machine: the path is resolved (symlinks followed) and reported, with the fix. Before: every
    one of these loaded, and analysis read the file."""
    secret = tmp_path / "home" / "private" / "unreleased.wav"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"RIFF-private")
    project_dir = tmp_path / "downloads" / "shared song"
    project_dir.mkdir(parents=True)
    fields: dict = {}
    if kind == "dotdot":
        path = "../../home/private/unreleased.wav"
    elif kind == "absolute":
        path = str(secret)
    elif kind == "symlink":
        (project_dir / "stems").mkdir()
        (project_dir / "stems" / "drums.wav").symlink_to(secret)
        path = "stems/drums.wav"
    else:
        (tmp_path / "downloads" / "stems").mkdir()
        fields["stems_dir"] = "../stems"
        path = "../stems/../../home/private/unreleased.wav"
    _write_project(project_dir, [{"name": "Drums", "path": path}], **fields)
    with pytest.raises(ProjectError) as err:
        load_project(project_dir)
    msg = str(err.value)
    assert "\n" not in msg and "stems[0]" in msg and str(secret.resolve()) in msg
    assert '"external": true' in msg  # the fix, when the user did choose the file
    # the explicit field (the user's choice, visible in the file) lets it load
    _write_project(project_dir, [{"name": "Drums", "path": path, "external": True}], **fields)
    project, _ = load_project(project_dir)
    assert resolve_stem_path(project.stems[0].path, project_dir) == secret.resolve()


def test_a_tempo_map_path_that_leaves_the_project_is_refused(tmp_path):
    """tempo.midi_file is read like a stem: a shared project must not point it at any file on the
    machine. Refused with the path and the fix; the explicit flag lets a file the user chose load."""
    secret = tmp_path / "home" / "private" / "session.mid"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"MThd")
    project_dir = tmp_path / "downloads" / "shared song"
    tempo = {"source": "midi_file", "midi_file": "../../home/private/session.mid"}
    _write_project(project_dir, [], tempo=tempo)
    with pytest.raises(ProjectError) as err:
        load_project(project_dir)
    assert "tempo.midi_file" in str(err.value) and str(secret.resolve()) in str(err.value)
    assert '"midi_file_external": true' in str(err.value)
    _write_project(project_dir, [], tempo={**tempo, "midi_file_external": True})
    project, _ = load_project(project_dir)
    assert resolve_stem_path(project.tempo.midi_file, project_dir) == secret.resolve()
    # inside the project folder: no flag needed
    (project_dir / "daw_tempo.mid").write_bytes(b"MThd")
    _write_project(project_dir, [], tempo={"source": "midi_file", "midi_file": "daw_tempo.mid"})
    assert load_project(project_dir)[0].tempo.midi_file == "daw_tempo.mid"


def test_a_project_saved_before_stems_dir_keeps_its_stems_beside_it(tmp_path):
    """`new --stems ../exports` used to save "../exports/…" without stems_dir: those projects must
    still open after the update (nothing saved is lost) — but only the folder that holds the
    project counts, never the rest of the disk."""
    project_dir = tmp_path / "songs" / "my song"
    project_dir.mkdir(parents=True)
    _write_project(project_dir, [{"name": "Drums", "path": "../exports/drums.wav"}])
    project, _ = load_project(project_dir)
    assert resolve_stem_path(project.stems[0].path, project_dir) == (tmp_path / "songs" / "exports" / "drums.wav").resolve()
    _write_project(project_dir, [{"name": "Drums", "path": "../../elsewhere/drums.wav"}])
    with pytest.raises(ProjectError, match="outside"):
        load_project(project_dir)


def test_stems_inside_the_project_or_the_stems_folder_load(tmp_path):
    from conftest import sine, write_wav

    from bridge.project.create import new_project

    stems = tmp_path / "bounces"
    write_wav(stems / "Song Drums.wav", sine(110, 0.5, 44100), 44100)
    result = new_project(tmp_path / "projects" / "song", stems, name="song")
    assert result.project.stems_dir == "../../bounces"
    project, project_dir = load_project(tmp_path / "projects" / "song")
    assert not project.stems[0].external
    assert resolve_stem_path(project.stems[0].path, project_dir) == (stems / "Song Drums.wav").resolve()


def test_a_stems_folder_of_links_to_files_elsewhere_makes_a_project_that_loads(tmp_path):
    """Producers link bounces into a folder (from the DAW's export folder, a sample drive): the
    user chose them by choosing the folder. `new` used to save a project that then refused to load
    its own stems as "outside the project folder"."""
    from conftest import sine, write_wav

    from bridge.project.create import new_project

    target = write_wav(tmp_path / "daw" / "Bounces" / "Song Drums.wav", sine(110, 0.5, 44100), 44100)
    (tmp_path / "stems").mkdir()
    (tmp_path / "stems" / "Song Drums.wav").symlink_to(target)
    write_wav(tmp_path / "stems" / "Song Bass.wav", sine(55, 0.5, 44100), 44100)
    new_project(tmp_path / "song", tmp_path / "stems", name="song")
    project, project_dir = load_project(tmp_path / "song")
    assert {st.name: st.external for st in project.stems} == {"Drums": True, "Bass": False}
    drums = next(st for st in project.stems if st.name == "Drums")
    assert resolve_stem_path(drums.path, project_dir) == target.resolve()


def test_stems_whose_names_say_nothing_get_a_hint_to_set_roles(tmp_path, caplog):
    from conftest import sine, write_wav

    from bridge.project.create import new_project

    for name in ("Audio 1.wav", "Audio 2.wav"):
        write_wav(tmp_path / "stems" / name, sine(110, 0.5, 44100), 44100)
    with caplog.at_level("WARNING", logger="bridge.project.create"):
        new_project(tmp_path / "song", tmp_path / "stems", name="song")
    assert "--role" in caplog.text and "drums" in caplog.text
    caplog.clear()
    write_wav(tmp_path / "stems2" / "Song Drums.wav", sine(110, 0.5, 44100), 44100)
    write_wav(tmp_path / "stems2" / "Audio 2.wav", sine(220, 0.5, 44100), 44100)
    with caplog.at_level("WARNING", logger="bridge.project.create"):
        new_project(tmp_path / "song2", tmp_path / "stems2", name="song2")
    assert "--role" not in caplog.text


def test_a_stem_the_user_adds_from_elsewhere_is_marked_and_reloads(tmp_path):
    from conftest import sine, write_wav

    from bridge.project.create import new_project
    from bridge.session import Session

    write_wav(tmp_path / "stems" / "Song Drums.wav", sine(110, 0.5, 44100), 44100)
    new_project(tmp_path / "song", tmp_path / "stems", name="song")
    elsewhere = write_wav(tmp_path / "library" / "Pads.wav", sine(220, 0.5, 44100), 44100)
    inside = write_wav(tmp_path / "stems" / "Song Bass.wav", sine(55, 0.5, 44100), 44100)
    with Session.open(tmp_path / "song", analyse=False, preview=False, autosave=False) as s:
        s.add_stem(elsewhere)
        s.add_stem(inside)
        s.save()
    project, _ = load_project(tmp_path / "song")
    assert {Path(st.path).name: st.external for st in project.stems} == {
        "Song Drums.wav": False, "Pads.wav": True, "Song Bass.wav": False}


def test_a_save_removes_temporary_files_left_by_a_killed_save(tmp_path):
    """benchmarks/reliability.py: a SIGKILL mid-save never harms stembridge.json but left its
    temporary file beside it, one per kill. The next save removes old ones (not a fresh one, which
    may be another process's save in progress)."""
    save_project(_project(), tmp_path)
    old = tmp_path / ".stembridge.json.k1ll3d.partial.json"
    old.write_text('{"half": ')
    os.utime(old, (1.0e9, 1.0e9))
    fresh = tmp_path / ".stembridge.json.wr1t1ng.partial.json"
    fresh.write_text('{"half": ')
    save_project(_project(), tmp_path)
    assert not old.exists() and fresh.exists()
    assert load_project(tmp_path)[0] == _project()
