"""Stems whose files are not where the project says, and finding them again (relink).

A producer moves a project, renames the export folder or copies the session to another machine:
the project still names ``../Bounces/Drums.wav`` and every analysis or render stops at the first
missing file. DAWs answer this with a "missing files" dialog that searches a folder the user points
at (Ableton's Search Folder, Logic's Locate, REAPER's Find missing media); this is that search.

Each analysis records what every stem's file was (content hash, size, length:
:func:`record_stem_files`, in the project's ``.stembridge`` folder). :func:`plan_relink` then looks
in one folder and its sub-folders for each missing file:

1. a file with the same content (same size, then the same hash), whatever its name: the stem was
   renamed ("Drums.wav" → "01 Drums.wav");
2. else a file of the same name (any case), or the same name with another audio extension (re-
   exported as FLAC), of the same length within ``LENGTH_TOLERANCE``: the stem re-bounced. Another
   song's "Drums.wav" has another length and is not taken; it is reported instead;
3. without a record (a project never analysed), the name alone.

Several equally good files: the one whose folders match the old path's last folders most
(``Song A/Bounces/Drums.wav`` over ``Song B/Bounces/Drums.wav``); a tie is reported, never guessed.
:func:`apply_relink` points the stems at the files found (the tempo map's MIDI file too); roles,
effects, mappings and sections stay.

Written here rather than taken from a library: the project's own file model (paths relative to
the project folder, the stems folder, the ``external`` flag), a directory walk and a match; no
library does it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import AudioError, ProjectError
from bridge.fsutil import atomic_write_text
from bridge.jobs import CancelToken
from bridge.project.schema import Project
from bridge.project.store import (
    CACHE_DIRNAME,
    relative_stem_path,
    resolve_stem_path,
    stem_path_is_inside,
)

log = logging.getLogger(__name__)

#: The walk stops after this many files (a producer may point at a whole music library): what it
#: found so far is used, and the result says the search was cut short.
MAX_FILES_SEARCHED = 200_000
#: The key :func:`plan_relink` uses for the tempo map's MIDI file beside the stem names.
TEMPO_MAP_KEY = "tempo map"
#: A file of the stem's name counts as the stem re-bounced when its length is within this share of
#: the recorded one (a bounce that gained a tail), else it is another song's stem of the same name.
LENGTH_TOLERANCE = 0.02
#: Where :func:`record_stem_files` keeps what each stem's file was (in the project's .stembridge).
RECORD_FILE = "stem_files.json"


@dataclass
class RelinkPlan:
    """What :func:`plan_relink` found in ``folder``: ``found`` maps each missing stem's name (and
    :data:`TEMPO_MAP_KEY` for the tempo map's MIDI file) to its file; ``not_found`` lists the names
    with no such file; ``ambiguous`` those with several equally likely files; ``rejected`` files of
    the right name that are not the stem (another length); ``changed`` the names found by name
    and length although a record says their file had other content (re-bounced, or another song's
    stem of the same length: the producer should check)."""

    folder: Path
    found: dict[str, Path] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)
    rejected: dict[str, list[Path]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    truncated: bool = False

    @property
    def complete(self) -> bool:
        return not self.not_found and not self.ambiguous


# -- what each stem's file was ----------------------------------------------------------------
def _record_path(project_dir: str | os.PathLike[str]) -> Path:
    return Path(project_dir) / CACHE_DIRNAME / RECORD_FILE


def stem_records(project_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """Stem name → {"digest", "size_bytes", "seconds"} as last analysed ({} when none or unreadable)."""
    try:
        data = json.loads(_record_path(project_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("digest"), str)}


def record_stem_files(project_dir: str | os.PathLike[str], files: Mapping[str, tuple[Path, str]]) -> None:
    """Remember each stem's file (name → (path, content hash)) for :func:`plan_relink`. Never fails
    an analysis: a read-only project folder just keeps no record."""
    from bridge.stems import probe_audio

    records = stem_records(project_dir)
    changed = False
    for name, (path, digest) in files.items():
        if records.get(name, {}).get("digest") == digest:
            continue
        try:
            seconds = probe_audio(path).duration_seconds
            records[name] = {"digest": digest, "size_bytes": Path(path).stat().st_size, "seconds": seconds}
            changed = True
        except (OSError, AudioError):
            continue
    if changed:
        try:
            _record_path(project_dir).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(_record_path(project_dir), json.dumps(records, indent=1, sort_keys=True) + "\n")
        except OSError as e:
            log.info("could not record the stems' files in %s: %s", project_dir, e)


# -- what is missing ---------------------------------------------------------------------------
def missing_files(project: Project, project_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Stem name → the file the project names for it, for every stem whose file is not there; the
    tempo map's MIDI file under :data:`TEMPO_MAP_KEY` when it is gone too."""
    project_dir = Path(project_dir)
    gone = {s.name: resolve_stem_path(s.path, project_dir) for s in project.stems}
    if project.tempo.midi_file:
        gone[TEMPO_MAP_KEY] = resolve_stem_path(project.tempo.midi_file, project_dir)
    return {name: path for name, path in gone.items() if not path.is_file()}


def missing_files_message(project_dir: str | os.PathLike[str], gone: Mapping[str, Path]) -> str:
    """One message for every missing file and how to find them again (CLI and app alike)."""
    listed = "; ".join(f"{name}: {path}" for name, path in gone.items())
    what = "a stem's file is" if len(gone) == 1 else f"the files of {len(gone)} stems are"
    return (f"{what} not where the project says ({listed}). If you moved them, point the project at "
            f"the folder they are in now: stembridge relink {project_dir} FOLDER (in the app: Locate "
            "missing stems… on the Stems tab); else bring the files back.")


def require_stem_files(project: Project, project_dir: str | os.PathLike[str]) -> None:
    """AudioError naming every missing stem file (not only the first) and the fix."""
    gone = missing_files(project, project_dir)
    gone.pop(TEMPO_MAP_KEY, None)  # the tempo map's own loader says so, with its own fix
    if gone:
        raise AudioError(missing_files_message(project_dir, gone))


# -- the search --------------------------------------------------------------------------------
@dataclass
class _Found:
    by_name: dict[str, list[Path]] = field(default_factory=dict)  # lower-case file name → files
    by_stem: dict[str, list[Path]] = field(default_factory=dict)  # lower-case name w/o extension → audio files
    by_size: dict[int, list[Path]] = field(default_factory=dict)  # byte size → audio files
    truncated: bool = False


def _walk(folder: Path, names: set[str], stems: set[str], sizes: set[int], cancel: CancelToken | None) -> _Found:
    """The files under ``folder`` that could be a missing one; hidden folders (.git, the projects'
    own .stembridge caches) are skipped."""
    from bridge.stems import AUDIO_EXTENSIONS

    out = _Found()
    seen = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            seen += 1
            if cancel is not None and seen % 1000 == 0:
                cancel.raise_if_cancelled("the search for the missing stems")
            if seen > MAX_FILES_SEARCHED:
                out.truncated = True
                return out
            low, path = f.lower(), Path(root) / f
            if low in names:
                out.by_name.setdefault(low, []).append(path)
            base, dot, ext = low.rpartition(".")
            if not dot or f".{ext}" not in AUDIO_EXTENSIONS or f.startswith("."):
                continue
            if base in stems:
                out.by_stem.setdefault(base, []).append(path)
            if sizes:
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                if size in sizes:
                    out.by_size.setdefault(size, []).append(path)
    return out


def _shared_tail(old: Path, new: Path) -> int:
    """How many of the folders just above the file name two paths share (case-insensitive)."""
    a = [p.lower() for p in reversed(old.parts[:-1])]
    b = [p.lower() for p in reversed(new.parts[:-1])]
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _closest(old: Path, candidates: list[Path]) -> list[Path]:
    """The candidates whose folders match the old path's last folders most (one: a clear choice)."""
    scores = [_shared_tail(old, c) for c in candidates]
    return [c for c, s in zip(candidates, scores, strict=True) if s == max(scores)]


def _choose_stem(old: Path, record: dict | None, found: _Found) -> tuple[list[Path], list[Path], bool]:
    """(the best candidates, files of the right name that are not the stem, whether the candidates
    differ from the recorded content) for one stem."""
    from bridge.stems import probe_audio

    named = found.by_name.get(old.name.lower()) or found.by_stem.get(old.stem.lower(), [])
    if record is not None:
        same = [p for p in dict.fromkeys([*found.by_size.get(record.get("size_bytes", -1), []), *named])
                if _digest_or_none(p) == record["digest"]]
        if same:
            return _closest(old, same), [], False
    usable, rejected = [], []
    for p in named:
        try:
            seconds = probe_audio(p).duration_seconds
        except AudioError:
            continue
        want = None if record is None else record.get("seconds")
        if isinstance(want, (int, float)) and abs(seconds - want) > LENGTH_TOLERANCE * max(want, 1.0):
            rejected.append(p)
        else:
            usable.append(p)
    return (_closest(old, usable) if usable else []), rejected, record is not None


def _digest_or_none(path: Path) -> str | None:
    """The file's content hash (:func:`bridge.stems.file_digest`), None when it cannot be read."""
    from bridge.stems import file_digest

    try:
        return file_digest(path)
    except OSError:
        return None


def plan_relink(project: Project, project_dir: str | os.PathLike[str], folder: str | os.PathLike[str],
                *, cancel: CancelToken | None = None) -> RelinkPlan:
    """Look in ``folder`` (and its sub-folders) for the missing files.

    Raises ProjectError when ``folder`` is not a folder, Cancelled when ``cancel`` is."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ProjectError(f"{folder}: not a folder. Pass the folder the stems are in now (it is searched "
                           "with its sub-folders).")
    gone = missing_files(project, project_dir)
    plan = RelinkPlan(folder=folder.resolve())
    if not gone:
        return plan
    records = stem_records(project_dir)
    sizes = {int(records[k]["size_bytes"]) for k in gone if k in records and isinstance(records[k].get("size_bytes"), int)}
    found = _walk(plan.folder, {p.name.lower() for p in gone.values()},
                  {p.stem.lower() for k, p in gone.items() if k != TEMPO_MAP_KEY}, sizes, cancel)
    plan.truncated = found.truncated
    taken: dict[Path, str] = {}
    for key, old in gone.items():
        if key == TEMPO_MAP_KEY:
            named = found.by_name.get(old.name.lower(), [])
            best, rejected, changed = (_closest(old, named) if named else []), [], False
        else:
            best, rejected, changed = _choose_stem(old, records.get(key), found)
        if rejected:
            plan.rejected[key] = rejected
        if not best:
            plan.not_found.append(key)
        elif len(best) > 1:
            plan.ambiguous[key] = best
        elif (chosen := best[0].resolve()) in taken:  # two stems would share one file: neither is sure
            other = taken.pop(chosen)
            plan.found.pop(other, None)
            plan.ambiguous[other] = plan.ambiguous[key] = [chosen]
        else:
            taken[chosen] = key
            plan.found[key] = chosen
            if changed:
                plan.changed.add(key)
    return plan


def apply_relink(project: Project, project_dir: str | os.PathLike[str], found: Mapping[str, Path]) -> Project:
    """The project with each stem in ``found`` (and the tempo map under :data:`TEMPO_MAP_KEY`)
    pointing at its new file. When the stems folder the project names is gone and the relinked
    stems share one folder, that folder becomes the stems folder (new bounces there are picked up,
    as before the move). A file outside the project and stems folders is marked ``external``: the
    producer chose it, as with Add stem."""
    project_dir = Path(project_dir)
    if not found:
        return project
    update: dict = {}
    stems_dir = resolve_stem_path(project.stems_dir, project_dir) if project.stems_dir else None
    parents = {p.parent for k, p in found.items() if k != TEMPO_MAP_KEY}
    if (stems_dir is None or not stems_dir.is_dir()) and len(parents) == 1:
        update["stems_dir"] = relative_stem_path(parents.pop(), project_dir)
    moved = project.model_copy(update=update)
    stems = []
    for s in project.stems:
        new = found.get(s.name)
        if new is None:
            stems.append(s)
            continue
        stems.append(s.model_copy(update={"path": relative_stem_path(new, project_dir),
                                          "external": not stem_path_is_inside(new, moved, project_dir)}))
    update["stems"] = stems
    midi = found.get(TEMPO_MAP_KEY)
    if midi is not None:
        update["tempo"] = project.tempo.model_copy(update={
            "midi_file": relative_stem_path(midi, project_dir),
            "midi_file_external": not stem_path_is_inside(midi, moved, project_dir)})
    return project.model_copy(update=update)


def describe_relink(plan: RelinkPlan) -> list[str]:
    """One line per missing file: where it was found, or why not (CLI and app share the wording)."""
    lines = [f"{name}: found {path}" + (" (not the file last analysed: re-bounced? check it is this song's)"
                                        if name in plan.changed else "") for name, path in plan.found.items()]
    lines += [f"{name}: several files could be it ({', '.join(str(p) for p in paths)}); move the wrong one "
              "away, or add the right one on the Stems tab" for name, paths in plan.ambiguous.items()]
    for name in plan.not_found:
        other = plan.rejected.get(name)
        lines.append(f"{name}: not in {plan.folder}" + (
            f" ({', '.join(str(p) for p in other)} has its name but another length: another song's?)"
            if other else ""))
    if plan.truncated:
        lines.append(f"(searched the first {MAX_FILES_SEARCHED} files only: point at a smaller folder)")
    return lines
