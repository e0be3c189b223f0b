"""Create a project from a folder of stems exported by a DAW, or from a full mix split by Demucs."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import AudioError, ProjectError
from bridge.jobs import CancelToken, ProgressCallback
from bridge.project.schema import PROJECT_FILENAME, EngineSettings, Project, Section, StemSpec
from bridge.project.store import relative_stem_path, save_project

log = logging.getLogger(__name__)


@dataclass
class NewProjectResult:
    project: Project
    project_dir: Path
    skipped: list[str] = field(default_factory=list)  # one message per unusable file


def _role_override(overrides: Mapping[str, str], path: Path, name: str) -> str | None:
    for key in (path.name, path.stem, name):
        for k, v in overrides.items():
            if k.lower() == key.lower():
                return v
    return None


def _refuse_to_replace(project_dir: Path, overwrite: bool) -> None:
    target = project_dir / PROJECT_FILENAME
    if target.exists() and not overwrite:
        raise ProjectError(
            f"{target} already exists; stembridge will not replace a saved project. Pick another folder, "
            "or pass --force to start it over."
        )


def new_project(
    project_dir: str | os.PathLike[str],
    stems_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    roles: Mapping[str, str] | None = None,
    overwrite: bool = False,
    **project_fields: object,
) -> NewProjectResult:
    """Discover stems in ``stems_dir``, guess roles and names, add the default mappings, save.

    roles: overrides, keyed by file name, file stem or display name (case-insensitive) → role.
    Unusable files (corrupt, empty, silent…) are skipped and reported in ``skipped``; if none is
    usable, AudioError lists why. An existing stembridge.json is never replaced unless ``overwrite``.
    """
    from bridge.project.presets import default_mappings
    from bridge.stems import discover_stems, display_names, guess_role, load_audio, probe_audio
    from bridge.stems.discover import full_mixes

    project_dir = Path(project_dir).resolve()
    _refuse_to_replace(project_dir, overwrite)
    roles = dict(roles or {})
    files = discover_stems(stems_dir)
    usable: list[Path] = []
    skipped: list[str] = []
    for path in files:
        try:
            info = probe_audio(path)
            # Decode once at the native rate: catches truncation, NaN and silence before they bite.
            load_audio(path, sample_rate=info.sample_rate)
            usable.append(path)
        except AudioError as e:
            skipped.append(str(e))
    if not usable:
        if len(skipped) == 1:  # one file: one line, it already names the file and the fix
            raise AudioError(f"No usable stems in {stems_dir}: {skipped[0]}")
        raise AudioError(f"No usable stems in {stems_dir}:\n  " + "\n  ".join(skipped))
    names = display_names(usable)
    stems = []
    chosen_roots = (project_dir, Path(stems_dir).resolve())
    for path, stem_name in zip(usable, names, strict=True):
        role = _role_override(roles, path, stem_name) or guess_role(path.name)
        # A link in the stems folder (to a DAW's bounce folder, a sample drive) resolves elsewhere;
        # the user chose it by choosing the folder, so the project records that (else it would
        # refuse to load the stems it was just made from).
        external = not any(path.resolve().is_relative_to(root) for root in chosen_roots)
        stems.append(StemSpec(name=stem_name, path=relative_stem_path(path, project_dir), role=role,
                              external=external))
    unknown = [k for k in roles if not any(_role_override({k: ""}, p, n) is not None for p, n in zip(usable, names, strict=True))]
    if unknown:
        raise ProjectError(
            f"--role names {', '.join(repr(u) for u in unknown)}, which match no stem; use a file name "
            f"or a stem name: {', '.join(names)}."
        )
    if "engine" not in project_fields:
        project_fields["engine"] = default_engine()
    project = Project(
        name=name or project_dir.name, stems=stems, stems_dir=relative_stem_path(Path(stems_dir), project_dir), mappings=default_mappings(stems), **project_fields
    )
    project_dir.mkdir(parents=True, exist_ok=True)
    save_project(project, project_dir)
    # Said, not silent: a stem whose name ends in "Master" or "Main" would otherwise vanish.
    skipped += [f"{mix}: left out: by its name it is the whole mix (the main bus), which would double "
                "every stem; rename it if it is a stem" for mix in full_mixes(stems_dir)]
    for msg in skipped:
        log.warning("skipped: %s", msg)
    if len(stems) > 1 and all(s.role == "other" for s in stems):
        # Names that say nothing ("Audio 1.wav", "Track 3.wav"): the rhythm analysis and the hit
        # mappings go by role. Measured on the shared and synthetic dev songs with every role
        # "other": 12 of 21 met the rhythm goals instead of 20 (benchmarks/rhythm_accuracy.py).
        log.warning("new project: no stem's file name says what it is (all have the role 'other'); "
                    "set the drums and bass roles (stembridge new --role 'FILE=drums', or the app's Stems "
                    "tab): beat tracking and the hit mappings rely on them")
    return NewProjectResult(project, project_dir, skipped)


def default_engine() -> EngineSettings:
    """A new project's engine: the shader engine (a look and palette chosen from the song, a look per
    section) where this machine can create an OpenGL 3.3 context, else the procedural engine, with
    a warning that says why and how to get the shader engine. Saved in the project, so the project
    renders the same way on any machine it is opened on."""
    from bridge.gl import opengl_problem

    problem = opengl_problem()
    if problem is None:
        return EngineSettings(name="shader")
    log.warning("new project: procedural engine (%s)", problem)
    return EngineSettings(name="procedural")


def sections_from_analysis(bounds: list[tuple[float, float]], *, seed: int = 0,
                           transitions: Sequence[str] | None = None) -> list[Section]:
    """Editable project sections from detected boundaries (seconds), one seed each.

    ``transitions``: one per section, from the music
    (:func:`bridge.visuals.character.section_transitions`: a cut on the downbeat into a louder
    section, a crossfade otherwise; the callers, above the visuals layer, compute it); without it
    every transition is the default."""
    transitions = list(transitions) if transitions is not None else ["crossfade"] * len(bounds)
    return [
        Section(name=f"Section {i + 1}", start=round(a, 4), end=round(b, 4), seed=seed + i + 1,
                transition=transitions[i])
        for i, (a, b) in enumerate(bounds)
    ]


def new_project_from_mix(
    project_dir: str | os.PathLike[str],
    mix_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    overwrite: bool = False,
    separation: Mapping[str, object] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    **project_fields: object,
) -> NewProjectResult:
    """Split a full mix into stems with Demucs (into ``PROJECT_DIR/stems``), then :func:`new_project`.

    ``separation``: keyword arguments for :func:`bridge.separation.separate_mix_to_folder` (model,
    model_repo, device, shifts, cache_dir…). Checks for an existing project before minutes of work.
    All or nothing: on any error, cancel or Ctrl-C (missing Demucs weights raise ModelNotAvailable,
    which says where we looked and how to get them) the folders and files this call made are
    removed, and a folder that was already there is left as it was.

    Raises ProjectError, SeparationError / ModelNotAvailable, MissingDependency, AudioError, Cancelled.
    """
    import shutil

    from bridge.separation import separate_mix_to_folder

    project_dir = Path(project_dir).resolve()
    _refuse_to_replace(project_dir, overwrite)
    stems_dir = project_dir / "stems"
    # What was there before, so a failure removes only what this call made.
    made_dirs = [d for d in (project_dir, stems_dir) if not d.exists()]
    written: list[Path] = []
    try:
        written = separate_mix_to_folder(mix_path, stems_dir, progress=progress, cancel=cancel,
                                         **dict(separation or {}))
        if cancel is not None:
            cancel.raise_if_cancelled("creating the project")
        return new_project(project_dir, stems_dir, name=name or Path(mix_path).stem, overwrite=overwrite,
                           **project_fields)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        for d in reversed(made_dirs):  # the stems folder first, then the project folder
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
        raise
