"""Load and save ``stembridge.json``: validated on load, written atomically.

Errors name the field (``stems[2].gain_db``), the bad value and the fix; a failed save never
damages the file already on disk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from bridge.errors import ProjectError
from bridge.fsutil import atomic_write_text
from bridge.project.schema import PROJECT_FILENAME, SCHEMA_VERSION, Project

#: Folder (inside the project folder) for caches: analysis results, preview frames.
CACHE_DIRNAME = ".stembridge"


def project_file(location: str | os.PathLike[str]) -> Path:
    """``location`` may be the project folder or the ``stembridge.json`` inside it."""
    path = Path(location)
    return path if path.suffix == ".json" else path / PROJECT_FILENAME


def cache_dir(project_dir: str | os.PathLike[str]) -> Path:
    return Path(project_dir) / CACHE_DIRNAME / "cache"


def _field_path(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(err: ValidationError, *, source: str) -> str:
    lines = [f"{source} is not a valid stembridge project:"]
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  - {_field_path(e['loc'])}: {msg} (got {e.get('input')!r})"
                     if e["type"] != "value_error" else f"  - {_field_path(e['loc'])}: {msg}")
    lines.append("Fix the field(s) above in the file (or in the app) and open it again.")
    return "\n".join(lines)


def format_option_errors(err: ValidationError, *, names: Mapping[str, str] | None = None) -> str:
    """Settings the user gave as options (not read from a file), refused: one line per field, led by
    the option that set it (``names``: field → option, e.g. ``{"tempo_bpm": "--tempo"}``) and the
    value given, instead of pydantic's report (its type codes and a link to its docs)."""
    lines = []
    for e in err.errors():
        field = _field_path(e["loc"])
        field = (names or {}).get(field, field)
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {msg}" if e["type"] == "value_error" else f"{field} {e.get('input')!r}: {msg}")
    return "; ".join(lines)


def _migrate(data: dict, *, source: str) -> dict:
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ProjectError(
            f"{source} has no integer 'schema_version'; is it a stembridge project? "
            f"Create one with `stembridge new PROJECT_DIR --stems STEMS_DIR`."
        )
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{source} has schema_version {version}, newer than this stembridge understands "
            f"({SCHEMA_VERSION}); upgrade stembridge (pip install -U stembridge)."
        )
    # Version 1 is the first schema; future migrations go here, one step at a time.
    return data


def load_project(location: str | os.PathLike[str]) -> tuple[Project, Path]:
    """Read and validate a project. Returns (project, project_dir).

    Raises ProjectError when the file is missing, not JSON, from a newer stembridge, or invalid.
    """
    path = project_file(location)
    if not path.is_file():
        raise ProjectError(
            f"No project at {path}: the file does not exist. Create one with "
            f"`stembridge new {path.parent} --stems STEMS_DIR`, or pass the folder that holds {PROJECT_FILENAME}."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProjectError(
            f"{path} is not valid JSON ({e}). Restore it from a backup or fix it by hand; "
            "stembridge did not change it."
        ) from None
    except (RecursionError, MemoryError, OSError) as e:
        # Thousands of nested brackets exhaust the parser's stack: still a broken file, one line.
        raise ProjectError(
            f"{path} could not be read as a project ({type(e).__name__}: nested or too large); restore "
            "it from a backup or fix it by hand; stembridge did not change it."
        ) from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    try:
        data = _migrate(data, source=str(path))
        project = Project.model_validate(data)
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source=str(path))) from None
    except (RecursionError, TypeError, AttributeError) as e:
        raise ProjectError(
            f"{path} does not have the shape of a stembridge project ({type(e).__name__}); restore it "
            "from a backup or fix it by hand; stembridge did not change it."
        ) from None
    _check_stem_paths(project, path.parent.resolve(), source=path)
    return project, path.parent.resolve()


def stem_path_is_inside(audio_path: Path, project: Project, project_dir: Path) -> bool:
    """Whether ``audio_path`` (resolved, symlinks followed) lies in the project folder or the
    project's stems folder: the places a project may read without the user's say-so."""
    resolved = Path(audio_path).resolve()
    roots = [Path(project_dir).resolve()]
    if project.stems_dir:
        roots.append(resolve_stem_path(project.stems_dir, project_dir))
    else:
        # A project saved before stems_dir was recorded: `stembridge new --stems ../exports` put its
        # stems beside the project folder. Those must keep opening (nothing saved may be lost), so
        # the folder that holds the project counts — still not the rest of the disk.
        roots.append(Path(project_dir).resolve().parent)
    return any(resolved.is_relative_to(root) for root in roots)


def _check_stem_paths(project: Project, project_dir: Path, *, source: Path) -> None:
    """A shared project file could name any file on this machine ("../../.ssh/id_rsa", an unreleased
    track in ~/Music) and have it decoded and muxed into a video. Stems must resolve inside the
    project or stems folder unless the stem says the user chose it (``external``); the same for the
    tempo map's MIDI file (``tempo.midi_file_external``)."""
    for i, s in enumerate(project.stems):
        if s.external:
            continue
        resolved = resolve_stem_path(s.path, project_dir)
        if not stem_path_is_inside(resolved, project, project_dir):
            where = f"the project folder {project_dir}" + (
                f" and its stems folder {resolve_stem_path(project.stems_dir, project_dir)}" if project.stems_dir else "")
            raise ProjectError(
                f"{source}: stems[{i}] ({s.name!r}) points at {resolved}, outside {where}; stembridge only "
                "reads files elsewhere that you chose. Move the file into the project folder, or, if you "
                f'chose it, add "external": true to stems[{i}] (or re-add it with Add stem).'
            )
    tempo = project.tempo
    if tempo.midi_file and not tempo.midi_file_external:
        resolved = resolve_stem_path(tempo.midi_file, project_dir)
        if not stem_path_is_inside(resolved, project, project_dir):
            raise ProjectError(
                f"{source}: tempo.midi_file points at {resolved}, outside the project folder "
                f"{project_dir}; stembridge only reads files elsewhere that you chose. Move the .mid "
                'into the project folder, or, if you chose it, add "midi_file_external": true to tempo.'
            )


def save_project(project: Project, location: str | os.PathLike[str]) -> Path:
    """Validate and write the project atomically (temp file + fsync + rename). Returns the file path."""
    path = project_file(location)
    try:
        # Re-validate: models can be built with model_construct or mutated in ways we must not save.
        Project.model_validate(project.model_dump())
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source="the project being saved")) from None
    text = json.dumps(project.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(path, text)
    _remove_stale_partials(path)
    return path


#: A save takes milliseconds: a temporary file this old was left by a process that was killed.
STALE_PARTIAL_S = 60.0


def _remove_stale_partials(path: Path) -> None:
    """Temporary files of saves that never finished (the app was killed mid-save: the project itself
    is safe, see :mod:`bridge.fsutil`) would pile up beside the project; remove the old ones."""
    import time

    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*.partial{path.suffix}"):
        try:
            if now - stale.stat().st_mtime > STALE_PARTIAL_S:
                stale.unlink()
        except OSError:
            pass


def relative_stem_path(audio_path: Path, project_dir: Path) -> str:
    """How a stem path is stored: relative to the project folder, POSIX separators."""
    rel = os.path.relpath(Path(audio_path).resolve(), Path(project_dir).resolve())
    return PurePosixPath(*Path(rel).parts).as_posix()


def resolve_stem_path(stored: str, project_dir: Path) -> Path:
    return (Path(project_dir) / Path(*PurePosixPath(stored).parts)).resolve()


def _rebase(stored: str, old_dir: Path, new_dir: Path) -> str:
    """A project-relative path, rewritten so it names the same file from ``new_dir``."""
    if Path(stored).is_absolute():
        return stored
    return relative_stem_path(resolve_stem_path(stored, old_dir), new_dir)


def copy_project(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Save As: copy a project (``stembridge.json`` and its ``.stembridge`` analysis cache) to
    ``dest``, a new or empty folder, rewriting the stem paths (and a tempo MIDI file's) so they
    name the same files from there. The source is only read. Returns the new project folder.

    Raises ProjectError when the source is not a valid project, ``dest`` is the source, lies
    inside its cache, or already holds a project or other files."""
    import shutil

    project, src_dir = load_project(source)
    dest_dir = Path(dest).resolve()
    if dest_dir == src_dir:
        raise ProjectError(f"{dest_dir} is the project itself; Save As needs another folder.")
    if dest_dir.is_relative_to(src_dir / CACHE_DIRNAME):
        raise ProjectError(f"{dest_dir} is inside the project's cache; pick a folder outside {src_dir / CACHE_DIRNAME}.")
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise ProjectError(f"{dest_dir} is not an empty folder; Save As writes into a new or empty folder "
                           "and never replaces files.")
    stems = [s.model_copy(update={"path": _rebase(s.path, src_dir, dest_dir)}) for s in project.stems]
    update: dict[str, object] = {"stems": stems}
    if project.stems_dir:
        update["stems_dir"] = _rebase(project.stems_dir, src_dir, dest_dir)
    if project.tempo.midi_file:
        update["tempo"] = project.tempo.model_copy(
            update={"midi_file": _rebase(project.tempo.midi_file, src_dir, dest_dir)})
    copied = project.model_copy(update=update)
    # Save As is the user's choice: stems that were inside the old project folder stay where they are,
    # so from the copy they are files the user chose outside it.
    copied = copied.model_copy(update={"stems": [
        s if s.external or stem_path_is_inside(resolve_stem_path(s.path, dest_dir), copied, dest_dir)
        else s.model_copy(update={"external": True}) for s in copied.stems]})
    tempo = copied.tempo
    if tempo.midi_file and not stem_path_is_inside(resolve_stem_path(tempo.midi_file, dest_dir), copied, dest_dir):
        copied = copied.model_copy(update={"tempo": tempo.model_copy(update={"midi_file_external": True})})
    dest_dir.mkdir(parents=True, exist_ok=True)
    cache = src_dir / CACHE_DIRNAME
    if cache.is_dir():
        # The cache is live while the app runs: the preview worker writes frames (a hidden
        # ".NAME.partial.npy" renamed into place) and evicts old ones. A file that is half written or
        # gone by the time its turn comes is a cache miss in the copy, never a failed Save As (it
        # failed with shutil.Error when the preview renamed a partial file mid-copy).
        shutil.copytree(cache, dest_dir / CACHE_DIRNAME, symlinks=True, ignore=_unfinished_files,
                        copy_function=_copy_if_still_there)
    save_project(copied, dest_dir)
    return dest_dir


def _unfinished_files(folder: str, names: list[str]) -> set[str]:
    """Files an atomic write has not finished (bridge.fsutil's hidden ``.NAME.*.partial*``)."""
    return {n for n in names if n.startswith(".") and ".partial" in n}


def _copy_if_still_there(src: str, dst: str) -> str:
    try:
        return shutil.copy2(src, dst)
    except FileNotFoundError:  # evicted or renamed since the folder was listed
        return dst
