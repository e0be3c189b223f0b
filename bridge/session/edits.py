"""Mapping and section commands of a Session."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bridge.errors import ProjectError
from bridge.project.schema import Mapping as MappingSpec
from bridge.project.schema import Project, Section
from bridge.project.store import format_validation_error
from bridge.session._helpers import MAPPING_FIELD_WORDS, _replace, mapping_words

if TYPE_CHECKING:
    pass


class EditsMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    # -- mappings ----------------------------------------------------------------------------
    @staticmethod
    def _check_index(items: Sequence[object], index: int, what: str) -> int:
        if not isinstance(index, int) or not -len(items) <= index < len(items):
            span = f"0–{len(items) - 1}" if items else "none yet"
            raise ProjectError(f"{what} index {index!r} does not exist; the project has {len(items)} ({span})")
        return index % len(items)

    def _mapping_words(self, index: int) -> str:
        """``Drums.onset → travel``: how undo labels name mapping ``index`` (its index when it has none)."""
        mappings = self._project.mappings
        if isinstance(index, int) and -len(mappings) <= index < len(mappings):
            return mapping_words(mappings[index])
        return f"mapping {index}"

    def add_mapping(self, source: str, target: str, **fields: Any) -> int:
        """Add a mapping (``source`` → ``target``; other Mapping fields as keywords). Returns its index."""
        try:
            mapping = MappingSpec(source=source, target=target, **fields)
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the new mapping")) from None
        with self._lock:
            self._edit(f"add mapping {mapping_words(mapping)}",
                       lambda p: p.model_copy(update={"mappings": [*p.mappings, mapping]}))
            return len(self._project.mappings) - 1

    def update_mapping(self, index: int, *, coalesce: bool = False, **changes: Any) -> None:
        """Change fields of mapping ``index`` (amount, offset, curve, attack_ms, release_ms, clamp,
        enabled, source, target). The undo label names it in words: "change Drums.onset → travel amount"."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            mappings = list(p.mappings)
            mappings[i] = _replace(mappings[i], changes, what=f"mapping {i}")
            return p.model_copy(update={"mappings": mappings})

        with self._lock:
            words = self._mapping_words(index)
            if set(changes) == {"enabled"}:
                label = f"{'unmute' if changes['enabled'] else 'mute'} mapping {words}"
            else:
                label = f"change {words} {', '.join(MAPPING_FIELD_WORDS.get(k, k) for k in sorted(changes))}"
            self._edit(label, change, coalesce=coalesce, key=f"mapping {index} {sorted(changes)}")

    def remove_mapping(self, index: int) -> None:
        """Delete mapping ``index`` (the later ones move up by one; a solo follows its mapping)."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            return p.model_copy(update={"mappings": [m for j, m in enumerate(p.mappings) if j != i]})

        with self._lock:
            self._edit(f"delete mapping {self._mapping_words(index)}", change)

    def duplicate_mapping(self, index: int) -> int:
        """Copy mapping ``index`` to just after it. Returns the copy's index."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            return p.model_copy(update={"mappings": [*p.mappings[:i + 1], p.mappings[i], *p.mappings[i + 1:]]})

        with self._lock:
            words = self._mapping_words(index)
            i = self._check_index(self._project.mappings, index, "mapping")
            self._edit(f"duplicate mapping {words}", change)
            return i + 1

    def move_mapping(self, index: int, to: int) -> None:
        """Move mapping ``index`` to position ``to`` (the others keep their order; a solo follows its
        mapping). Order matters where it shows: the editor's rows and the file."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            j = self._check_index(p.mappings, to, "mapping")
            mappings = list(p.mappings)
            mappings.insert(j, mappings.pop(i))
            return p.model_copy(update={"mappings": mappings})

        with self._lock:
            words = self._mapping_words(index)
            i = self._check_index(self._project.mappings, index, "mapping")
            j = self._check_index(self._project.mappings, to, "mapping")
            self._edit(f"move mapping {words} {'up' if j < i else 'down'}", change)

    @property
    def mapping_solo(self) -> frozenset[int]:
        """The soloed mappings' indices (empty: none soloed, every enabled mapping plays)."""
        return self._mapping_solo

    def set_mapping_solo(self, indices: Iterable[int]) -> None:
        """Only these mappings drive the preview (monitoring, like a stem's solo: not saved, no undo,
        not in the export). Muted (disabled) mappings stay off. Each solo follows its mapping through
        edits, deletes, duplicates, moves and their undo; a preset replacing the mappings clears it."""
        with self._lock:
            solo = frozenset(self._check_index(self._project.mappings, i, "mapping") for i in indices)
            if solo == self._mapping_solo:
                return
            self._mapping_solo = solo
        self._push_preview(edit_time=time.monotonic())

    def set_mappings(self, mappings: Sequence[MappingSpec | Mapping[str, Any]], *, label: str = "replace mappings") -> None:
        """Replace every mapping (a preset, a paste)."""
        try:
            items = [m if isinstance(m, MappingSpec) else MappingSpec(**m) for m in mappings]
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the mappings")) from None
        self._edit(label, lambda p: p.model_copy(update={"mappings": items}))

    # -- mapping presets: the shipped ones and the producer's own ----------------------------
    def mapping_presets(self) -> tuple[list[str], list[str]]:
        """(shipped preset names, the producer's saved preset names)."""
        from bridge.mapping.presets import PRESETS
        from bridge.mapping.user_presets import list_user_presets

        return list(PRESETS), list_user_presets()

    def apply_mapping_preset(self, name: str) -> None:
        """Replace the mappings with a shipped preset (built for this project's stems) or a saved one;
        one undo step ("apply preset NAME")."""
        from bridge.mapping.presets import PRESETS
        from bridge.mapping.user_presets import load_user_preset

        stems = self.project.stems
        mappings = PRESETS[name](stems) if name in PRESETS else load_user_preset(name, stems)
        self.set_mappings(mappings, label=f"apply preset {name}")

    def save_mapping_preset(self, name: str, *, overwrite: bool = False) -> Path:
        """Save this project's mappings as the producer's preset ``name`` (user config folder)."""
        from bridge.mapping.user_presets import save_user_preset

        project = self.project
        return save_user_preset(name, project.mappings, project.stems, overwrite=overwrite)

    def delete_mapping_preset(self, name: str) -> Path:
        """Delete the producer's saved preset ``name`` (shipped presets cannot be deleted)."""
        from bridge.mapping.user_presets import delete_user_preset

        return delete_user_preset(name)

    # -- sections ----------------------------------------------------------------------------
    def add_section(self, start: float, *, end: float | None = None, unit: str = "seconds", **fields: Any) -> int:
        """Add a section (prompt, negative_prompt, seed, style, name, transition_beats, look, transition as keywords).
        Returns its index."""
        try:
            section = Section(start=start, end=end, unit=unit, **fields)
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the new section")) from None
        with self._lock:
            self._edit(f"add section at {start:g} {unit}",
                       lambda p: p.model_copy(update={"sections": [*p.sections, section]}))
            return len(self._project.sections) - 1

    def update_section(self, index: int, *, coalesce: bool = False, **changes: Any) -> None:
        if changes.get("look"):
            from bridge.visuals.shader_looks import check_look_name

            try:
                changes["look"] = check_look_name(str(changes["look"]))
            except ValueError as e:
                raise ProjectError(f"section {index}: {e}") from None

        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            sections = list(p.sections)
            sections[i] = _replace(sections[i], changes, what=f"section {i}")
            return p.model_copy(update={"sections": sections})

        self._edit(f"section {index} {', '.join(sorted(changes))}", change, coalesce=coalesce)

    def set_prompt(self, index: int, prompt: str, *, negative_prompt: str | None = None,
                   coalesce: bool = False) -> None:
        changes: dict[str, Any] = {"prompt": prompt}
        if negative_prompt is not None:
            changes["negative_prompt"] = negative_prompt
        self.update_section(index, coalesce=coalesce, **changes)

    def split_section(self, index: int, at: float) -> int:
        """Split section ``index`` at ``at`` (in the section's unit): the new second half copies its
        prompt and style with the next seed. Returns the new section's index."""
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            s = p.sections[i]
            if not s.start < at or (s.end is not None and not at < s.end):
                raise ProjectError(f"split point {at:g} must lie inside section {i} ({s.start:g}–"
                                   f"{'end' if s.end is None else f'{s.end:g}'} {s.unit})")
            first = _replace(s, {"end": at if s.end is not None else None}, what=f"section {i}")
            second = _replace(s, {"start": at, "name": f"{s.name} 2" if s.name else "",
                                  "seed": (s.seed + 1) % 2**32}, what="the new section")
            sections = list(p.sections)
            sections[i:i + 1] = [first, second]
            return p.model_copy(update={"sections": sections})

        with self._lock:
            self._edit(f"split section {index}", change)
            return self._check_index(self._project.sections, index, "section") + 1

    def move_section(self, index: int, start: float, *, coalesce: bool = False) -> None:
        """Move section ``index`` to begin at ``start`` (its length is kept when it has an end)."""
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            s = p.sections[i]
            end = None if s.end is None else s.end + (start - s.start)
            sections = list(p.sections)
            sections[i] = _replace(s, {"start": start, "end": end}, what=f"section {i}")
            return p.model_copy(update={"sections": sections})

        self._edit(f"move section {index}", change, coalesce=coalesce)

    def remove_section(self, index: int) -> None:
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            return p.model_copy(update={"sections": [s for j, s in enumerate(p.sections) if j != i]})

        self._edit(f"remove section {index}", change)

    def adopt_detected_sections(self) -> int:
        """Make the detected sections the project's editable sections. Returns how many."""
        from bridge.project.create import sections_from_analysis
        from bridge.visuals.character import section_transitions

        analysis = self._analysis
        if analysis is None:
            raise ProjectError("the stems are not analysed yet; wait for the analysis, then adopt its sections")
        sections = sections_from_analysis(analysis.sections, seed=self._project.engine.seed,
                                          transitions=section_transitions(analysis, list(analysis.sections)))
        self._edit("adopt detected sections", lambda p: p.model_copy(update={"sections": sections}))
        return len(sections)

    def import_daw_markers(self, markers: Sequence[Any], *, mode: str = "replace", daw: str = "the DAW") -> int:
        """The DAW's markers (:class:`bridge.transport.markers.DawMarker`, from
        :func:`bridge.transport.osc_io.fetch_daw_markers`) become the sections, names kept, as one
        undoable edit. ``mode`` "replace" (a marker named like a section keeps its prompt and seed)
        or "merge" (existing sections stay; markers add sections where none starts). Live's cue
        points stay in beats (quarter notes, as the transport maps Live's position through the
        beat grid), REAPER's in seconds. Returns how many sections the project has after it."""
        from bridge.project.markers import markers_to_sections

        if not markers:
            raise ProjectError(
                f"{daw} sent no markers, so the sections were left as they are. Add markers (Live: Set Locator; "
                "REAPER: Insert marker, with the stembridge pattern file) and import again")
        if mode not in ("replace", "merge"):
            raise ProjectError(f"marker import mode {mode!r} must be 'replace' or 'merge'")

        def change(p: Project) -> Project:
            try:
                sections = markers_to_sections(markers, p.sections, mode=mode, seed=p.engine.seed)
            except (ValueError, ValidationError) as e:
                raise ProjectError(f"the markers from {daw} do not make valid sections: {e}") from None
            return p.model_copy(update={"sections": sections})

        with self._lock:
            self._edit(f"import {len(markers)} markers from {daw}", change)
            return len(self._project.sections)

