"""Mapping presets the producer saves: a project's mappings kept in the user's config folder
(``platformdirs.user_config_dir("stembridge")/mapping_presets``, one JSON file per preset) and
listed beside the shipped ones (:data:`bridge.mapping.presets.PRESETS`).

A saved mapping remembers the role of the stem its source names, so a preset made on a project with
a stem called "Drums" applies to another project whose drum stem is called "Kit": a source whose stem
is not in that project is moved to the one stem there with the same role. Sources of the mix and the
oscillators (``mix.*``, ``beat.*``, ``bar.*``) apply as they are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bridge.errors import ProjectError
from bridge.project import schema

#: Bump when the file layout changes (older files are still read).
FORMAT_VERSION = 1
_MAX_NAME = 60


def user_presets_dir() -> Path:
    """Where saved mapping presets live (created when the first one is saved)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("stembridge", appauthor=False)) / "mapping_presets"


def _folder(folder: str | os.PathLike[str] | None) -> Path:
    return Path(folder) if folder is not None else user_presets_dir()


def _file_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._") or "preset"
    return f"{slug.lower()}.json"


def check_preset_name(name: str) -> str:
    """The name, stripped; ProjectError when it is empty, too long or a shipped preset's name."""
    from bridge.mapping.presets import PRESETS

    text = (name or "").strip()
    if not text:
        raise ProjectError("A mapping preset needs a name, e.g. 'club strobe'.")
    if len(text) > _MAX_NAME:
        raise ProjectError(f"The preset name {text!r} is {len(text)} characters long; keep it to {_MAX_NAME}.")
    if text.casefold() in {n.casefold() for n in PRESETS}:
        raise ProjectError(f"{text!r} is a shipped preset's name ({', '.join(PRESETS)}); pick another name.")
    return text


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("mappings"), list):
            raise ValueError("not a stembridge mapping preset (needs 'name' and 'mappings')")
        return data
    except (OSError, ValueError) as e:
        raise ProjectError(f"{path}: the mapping preset cannot be read ({e}). Delete the file or fix it.") from None


def _files(folder: Path) -> dict[str, Path]:
    """Saved preset name → file (unreadable files are skipped here and reported when applied)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            out[_read(path)["name"]] = path
        except ProjectError:
            continue
    return out


def list_user_presets(*, folder: str | os.PathLike[str] | None = None) -> list[str]:
    """The saved presets' names, sorted case-insensitively."""
    return sorted(_files(_folder(folder)), key=str.casefold)


def _find(name: str, folder: Path) -> Path | None:
    return next((p for n, p in _files(folder).items() if n.casefold() == name.strip().casefold()), None)


def save_user_preset(name: str, mappings: Sequence[schema.Mapping], stems: Sequence[schema.StemSpec], *,
                     overwrite: bool = False, folder: str | os.PathLike[str] | None = None) -> Path:
    """Save ``mappings`` as preset ``name`` (each source's stem role remembered); returns the file.
    ProjectError when the name is taken (unless ``overwrite``) or the folder cannot be written."""
    from bridge.fsutil import atomic_output

    text = check_preset_name(name)
    root = _folder(folder)
    existing = _find(text, root)
    if existing is not None and not overwrite:
        raise ProjectError(f"A mapping preset called {text!r} already exists ({existing}); "
                           "pick another name or replace it.")
    roles = {s.name: s.role for s in stems}
    items = []
    for m in mappings:
        item = m.model_dump(mode="json")
        role = roles.get(m.source.split(".", 1)[0])
        if role is not None:
            item["stem_role"] = role
        items.append(item)
    path = existing or root / _file_name(text)
    if existing is None and path.exists():  # another name with the same slug: keep both
        stem, i = path.stem, 2
        while path.exists():
            path, i = root / f"{stem}-{i}.json", i + 1
    try:
        root.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_text(json.dumps({"format": FORMAT_VERSION, "name": text, "mappings": items}, indent=2),
                                 encoding="utf-8")
    except OSError as e:
        raise ProjectError(f"The mapping preset could not be saved to {path} ({e}). Check that the folder "
                           "is writable.") from None
    return path


def load_user_preset(name: str, stems: Sequence[schema.StemSpec], *,
                     folder: str | os.PathLike[str] | None = None) -> list[schema.Mapping]:
    """Preset ``name``'s mappings for a project with these ``stems`` (sources moved to the stem with
    the same role when their stem is not there). ProjectError when there is no such preset."""
    root = _folder(folder)
    path = _find(name, root)
    if path is None:
        have = ", ".join(list_user_presets(folder=root)) or "none"
        raise ProjectError(f"There is no saved mapping preset called {name!r} in {root} (saved: {have}).")
    names = {s.name for s in stems}
    by_role: dict[str, list[str]] = {}
    for s in stems:
        by_role.setdefault(s.role, []).append(s.name)
    out = []
    for item in _read(path)["mappings"]:
        item = dict(item)
        role = item.pop("stem_role", None)
        prefix, _, feature = str(item.get("source", "")).partition(".")
        if role is not None and prefix not in names and len(by_role.get(role, [])) == 1:
            item["source"] = f"{by_role[role][0]}.{feature}"
        try:
            out.append(schema.Mapping(**item))
        except ValidationError as e:
            raise ProjectError(f"{path}: a mapping in preset {name!r} is not valid ({e.errors()[0]['msg']}).") from None
    return out


def delete_user_preset(name: str, *, folder: str | os.PathLike[str] | None = None) -> Path:
    """Delete saved preset ``name``; returns the removed file. ProjectError when there is none."""
    root = _folder(folder)
    path = _find(name, root)
    if path is None:
        raise ProjectError(f"There is no saved mapping preset called {name!r} in {root}.")
    try:
        path.unlink()
    except OSError as e:
        raise ProjectError(f"{path} could not be deleted ({e}).") from None
    return path


__all__ = ["check_preset_name", "delete_user_preset", "list_user_presets", "load_user_preset",
           "save_user_preset", "user_presets_dir"]
