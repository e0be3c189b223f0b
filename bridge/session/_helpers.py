"""Helpers the Session's parts share: validation of edited projects, undo entries, signatures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from bridge.errors import ProjectError
from bridge.project.schema import Mapping as MappingSpec
from bridge.project.schema import Project
from bridge.project.store import format_validation_error

if TYPE_CHECKING:
    pass


#: Consecutive ``coalesce=True`` edits with the same label within this many seconds are one undo step.
COALESCE_WINDOW_S = 1.0
#: Undo steps kept (each is one Project snapshot: a few kB).
DEFAULT_UNDO_LIMIT = 500

Origin = Literal["edit", "undo", "redo", "external", "watcher"]



#: How undo labels name a mapping's fields.
MAPPING_FIELD_WORDS = {"attack_ms": "attack", "release_ms": "release", "clamp": "range", "enabled": "on/off"}


def mapping_words(m: MappingSpec) -> str:
    """A mapping in words, for undo labels and messages: ``Drums.onset → travel``."""
    return f"{m.source} → {m.target}"


def _follow_solo(solo: frozenset[int], old: Sequence[MappingSpec], new: Sequence[MappingSpec]) -> frozenset[int]:
    """The indices in ``new`` of the soloed mappings of ``old``. Edits keep untouched mappings as the
    same objects (a delete, move or duplicate, and undo, which restores the earlier list), so a solo
    follows its object (the first of a duplicate's two); a mapping edited in place (the only item
    that differs, same length) keeps its index; one that is gone loses its solo."""
    edited_in_place = len(old) == len(new) and sum(a is not b for a, b in zip(old, new, strict=True)) == 1
    out = set()
    for k in solo:
        if k >= len(old):
            continue
        j = next((j for j, m in enumerate(new) if m is old[k]), None)
        if j is not None:
            out.add(j)
        elif edited_in_place and new[k] is not old[k]:
            out.add(k)
    return frozenset(out)


@dataclass
class _UndoEntry:
    label: str
    project: Project
    at: float
    coalesce: bool = False
    #: What a coalesced gesture edits (e.g. one mapping's amount); None → the label.
    key: str | None = None


def _validated(project: Project, *, what: str, base: Project | None = None) -> Project:
    """A fresh, validated Project (model_copy does not validate); ProjectError with the field and fix.

    ``base``: the project the edit started from. Top-level fields still holding the very same
    objects as in ``base`` were validated when ``base`` was, so only the others are dumped and
    validated again (a mapping edit re-validates the mapping list, not every stem and section);
    the project-level validators always run.
    """
    try:
        if base is None:
            return Project.model_validate(project.model_dump())
        data = {name: _revalidation_data(getattr(project, name), getattr(base, name))
                for name in Project.model_fields}
        return Project.model_validate(data)
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source=what)) from None


def _revalidation_data(value: Any, before: Any) -> Any:
    """``value`` as input for validating it again: kept as it is where it is the object ``before``
    held (validated then), dumped where it is new; a list keeps the items it shares with
    ``before`` (an edit of one mapping re-validates that mapping, not all of them)."""
    if value is before:
        return value
    if isinstance(value, list) and isinstance(before, list):
        old_ids = {id(item) for item in before}
        return [item if id(item) in old_ids else _dump(item) for item in value]
    return _dump(value)


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _replace(model: BaseModel, changes: Mapping[str, Any], *, what: str) -> BaseModel:
    try:
        return type(model).model_validate({**model.model_dump(), **changes})
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source=what)) from None


def _changed_parts(old: Project, new: Project) -> frozenset[str]:
    return frozenset(name for name in Project.model_fields if getattr(old, name) != getattr(new, name))


def _active_fx(slots: Sequence[Any]) -> str:
    """A stem chain's active slots (what its analysis hears) as text; bypassed slots change nothing."""
    return "|".join(s.model_dump_json() for s in slots if not s.bypass)


def _analysis_signature(project: Project, missing: Iterable[str]) -> tuple:
    """What the analysis depends on: the present stems' names, files, offsets and active effects, and
    the tempo."""
    gone = set(missing)
    return (tuple((s.name, s.path, s.offset_seconds, _active_fx(s.fx)) for s in project.stems if s.name not in gone),
            project.tempo.model_dump_json(), project.rhythm.model_dump_json())


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)

def _check_cache_limit(limit_bytes: int) -> int:
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ProjectError(f"preview cache limit {limit_bytes!r} must be a whole number of bytes >= 0")
    return limit_bytes


def _merge3(base: Any, ours: Any, theirs: Any) -> Any:
    """Three-way merge of JSON values: what changed on one side only is taken from that side;
    objects merge key by key and equal-length lists item by item (an item with a ``name`` only
    with the same-named item, so a removed-and-added stem never mixes two stems); where both sides
    changed the same value differently, ours wins. Hand-written: the JSON merge libraries
    (jsonmerge, deepmerge) merge two documents, not a base and two edits of it."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if isinstance(base, dict) and isinstance(ours, dict) and isinstance(theirs, dict):
        keys = list(dict.fromkeys([*ours, *theirs]))
        return {k: _merge3(base.get(k), ours.get(k), theirs.get(k)) for k in keys
                if not (k not in ours and k in base) and not (k not in theirs and k in base)}
    if (isinstance(base, list) and isinstance(ours, list) and isinstance(theirs, list)
            and len(base) == len(ours) == len(theirs)
            and all(not isinstance(b, dict) or (b.get("name") == o.get("name") == t.get("name"))
                    for b, o, t in zip(base, ours, theirs, strict=True) if isinstance(o, dict) and isinstance(t, dict))):
        return [_merge3(b, o, t) for b, o, t in zip(base, ours, theirs, strict=True)]
    return ours


def merge_projects(base: Project, ours: Project, theirs: Project) -> Project:
    """``theirs`` (the file as another window or the CLI saved it) with this session's unsaved edits
    since ``base`` (the file as this session last read or wrote it) kept. ``theirs`` when the
    merge does not validate."""
    merged = _merge3(base.model_dump(mode="json"), ours.model_dump(mode="json"), theirs.model_dump(mode="json"))
    try:
        return Project.model_validate(merged)
    except ValidationError:
        return theirs
