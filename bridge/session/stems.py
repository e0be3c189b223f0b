"""Stem and effect-chain commands of a Session."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bridge.errors import ProjectError
from bridge.project.schema import FxSlot, Project, StemSpec
from bridge.project.store import (
    format_validation_error,
    relative_stem_path,
    resolve_stem_path,
    stem_path_is_inside,
)
from bridge.session._helpers import Origin, _replace

if TYPE_CHECKING:
    from bridge.jobs import CancelToken
    from bridge.project.relink import RelinkPlan


class StemsMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    # -- stems -------------------------------------------------------------------------------
    def _stem_index(self, project: Project, name: str) -> int:
        for i, s in enumerate(project.stems):
            if s.name == name:
                return i
        names = ", ".join(repr(s.name) for s in project.stems) or "none"
        raise ProjectError(f"there is no stem named {name!r}; the stems are: {names}")

    def _update_stem(self, label: str, name: str, changes: Mapping[str, Any], *, coalesce: bool = False) -> None:
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            stems = list(p.stems)
            stems[i] = _replace(stems[i], changes, what=f"stem {name!r}")
            return p.model_copy(update={"stems": stems})

        self._edit(label, change, coalesce=coalesce)

    def _add_stem_file(self, path: Path, *, name: str | None = None, role: str | None = None,
                       offset_seconds: float = 0.0, gain_db: float = 0.0, origin: Origin = "edit") -> tuple[str, str]:
        from bridge.stems import display_names, guess_role, probe_audio

        path = Path(path).resolve()
        probe_audio(path)  # raises AudioError naming the problem
        with self._lock:
            project = self._project
            if any(resolve_stem_path(s.path, self.project_dir) == path for s in project.stems):
                raise ProjectError(f"{path} is already a stem of this project")
            existing = [resolve_stem_path(s.path, self.project_dir) for s in project.stems]
            if name is None:
                name = display_names([*existing, path])[-1]
                taken = {s.name for s in project.stems}
                base, n = name, 2
                while name in taken:
                    name, n = f"{base} {n}", n + 1
            role = role or guess_role(path.name)
            # the user picked this file: if it lies outside the project and stems folders, say so
            # in the file, so loading it later is not refused as a path planted by someone else
            external = not stem_path_is_inside(path, project, self.project_dir)
            spec = StemSpec(name=name, path=relative_stem_path(path, self.project_dir), role=role,
                            offset_seconds=offset_seconds, gain_db=gain_db, external=external)
            self._edit(f"add stem {name}", lambda p: p.model_copy(update={"stems": [*p.stems, spec]}), origin=origin)
            return name, spec.role

    def add_stem(self, path: str | os.PathLike[str], *, name: str | None = None, role: str | None = None,
                 offset_seconds: float = 0.0, gain_db: float = 0.0) -> str:
        """Add an audio file as a stem (role guessed from its name unless given). Returns its name.
        Raises AudioError when the file is not usable audio, ProjectError when the name is taken."""
        try:
            return self._add_stem_file(Path(path), name=name, role=role, offset_seconds=offset_seconds,
                                       gain_db=gain_db)[0]
        except ValidationError as e:  # StemSpec(...) with a bad role / offset / gain
            raise ProjectError(format_validation_error(e, source=f"stem {path}")) from None

    def plan_relink(self, folder: str | os.PathLike[str], *, cancel: CancelToken | None = None) -> RelinkPlan:
        """Look for the missing stems' files (and a missing tempo-map MIDI file) in ``folder`` and
        its sub-folders (:func:`bridge.project.relink.plan_relink`); changes nothing. Safe on any
        thread. ProjectError when ``folder`` is not a folder, Cancelled when ``cancel`` is."""
        from bridge.project.relink import plan_relink

        with self._lock:
            project = self._project
        return plan_relink(project, self.project_dir, folder, cancel=cancel)

    def apply_relink(self, plan: RelinkPlan) -> bool:
        """Point the stems at the files ``plan`` found: one undoable edit; roles, effects, mappings
        and sections stay. Returns False when it found nothing."""
        from bridge.project.relink import TEMPO_MAP_KEY, apply_relink

        if not plan.found:
            return False
        n = len(plan.found)
        what = "the tempo map" if list(plan.found) == [TEMPO_MAP_KEY] else f"{n} missing file{'s' if n > 1 else ''}"
        return self._edit(f"locate {what}", lambda p: apply_relink(p, self.project_dir, plan.found))

    def relink_stems(self, folder: str | os.PathLike[str]) -> RelinkPlan:
        """:meth:`plan_relink` then :meth:`apply_relink`: returns what was found, what was not and
        what was ambiguous."""
        plan = self.plan_relink(folder)
        self.apply_relink(plan)
        return plan

    def remove_stem(self, name: str) -> None:
        """Remove a stem (its mappings stay and report a problem until removed or re-pointed)."""
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            return p.model_copy(update={"stems": [s for j, s in enumerate(p.stems) if j != i]})

        self._edit(f"remove stem {name}", change)

    def rename_stem(self, name: str, new_name: str) -> None:
        """Rename a stem and the mappings that name it (``Old.feature`` → ``New.feature``)."""
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            stems = list(p.stems)
            stems[i] = _replace(stems[i], {"name": new_name}, what=f"stem {name!r}")
            prefix = f"{name}."
            mappings = [m.model_copy(update={"source": new_name + "." + m.source[len(prefix):]})
                        if m.source.startswith(prefix) else m for m in p.mappings]
            return p.model_copy(update={"stems": stems, "mappings": mappings})

        self._edit(f"rename stem {name}", change)
        with self._lock:  # the re-bounced badge follows the stem
            if name in self._rebounced:
                self._rebounced.discard(name)
                self._rebounced.add(new_name)

    def set_stem_role(self, name: str, role: str) -> None:
        self._update_stem(f"stem {name} role", name, {"role": role})

    def set_stem_gain(self, name: str, gain_db: float, *, coalesce: bool = False) -> None:
        self._update_stem(f"stem {name} gain", name, {"gain_db": gain_db}, coalesce=coalesce)

    def set_stem_offset(self, name: str, offset_seconds: float, *, coalesce: bool = False) -> None:
        self._update_stem(f"stem {name} offset", name, {"offset_seconds": offset_seconds}, coalesce=coalesce)

    def set_stem_muted(self, name: str, muted: bool) -> None:
        self._update_stem(f"{'mute' if muted else 'unmute'} stem {name}", name, {"muted": muted})

    # -- effect chains (a stem's, or the master's when ``stem`` is None) ------------------------
    def _chain_words(self, stem: str | None) -> str:
        return "master" if stem is None else f"stem {stem}"

    def fx_chain(self, stem: str | None) -> list[FxSlot]:
        """A stem's effect chain, or the master chain (``stem=None``)."""
        from bridge.plugins.edit import chain_of

        return chain_of(self.project, stem)

    def _set_chain(self, label: str, stem: str | None, change: Callable[[list[FxSlot]], list[FxSlot]], *,
                   coalesce: bool = False, key: str | None = None) -> None:
        from bridge.plugins.edit import chain_of, with_chain

        self._edit(label, lambda p: with_chain(p, stem, change(chain_of(p, stem))), coalesce=coalesce, key=key)

    def _fx_tempo(self) -> float:
        from bridge.analysis.project import chain_tempo_bpm

        return chain_tempo_bpm(self.project) or 120.0

    def add_fx(self, stem: str | None, plugin: str | FxSlot, *, name: str | None = None,
               parameters: Mapping[str, Any] | None = None, mix: float = 1.0, position: int | None = None) -> int:
        """Add an effect to a stem's chain (the master chain when ``stem`` is None): ``plugin`` is a
        built-in's class name, a scanned plugin's name, a bundle path (as `stembridge fx add`), or a
        ready FxSlot. Returns its index in the chain. PluginError when it cannot be used."""
        from bridge.plugins.edit import chain_of, make_slot

        chain_of(self.project, stem)  # an unknown stem fails before a plugin is loaded
        slot = plugin if isinstance(plugin, FxSlot) else make_slot(
            plugin, name=name, parameters=dict(parameters or {}), mix=mix, tempo_bpm=self._fx_tempo())
        at = len(chain_of(self.project, stem)) if position is None else position
        at = max(0, min(at, len(chain_of(self.project, stem))))
        self._set_chain(f"add {slot.label} to {self._chain_words(stem)}", stem,
                        lambda slots: [*slots[:at], slot, *slots[at:]])
        return at

    def remove_fx(self, stem: str | None, index: int) -> None:
        """Remove slot ``index`` (0-based) from a stem's chain or the master chain."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        label = f"remove {slots[i].label} from {self._chain_words(stem)}"
        self._set_chain(label, stem, lambda s: [x for j, x in enumerate(s) if j != i])

    def set_fx(self, stem: str | None, index: int, *, parameters: Mapping[str, Any] | None = None,
               mix: float | None = None, bypass: bool | None = None, coalesce: bool = False) -> None:
        """Change slot ``index``: parameters merged in (checked by loading the plugin, whose full state
        is re-captured), wet/dry ``mix`` 0..1, ``bypass``."""
        from bridge.plugins.edit import update_slot

        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        new = update_slot(slots[i], parameters=dict(parameters) if parameters else None, mix=mix,
                          bypass=bypass, tempo_bpm=self._fx_tempo())
        what = ("bypass" if bypass else "enable") if bypass is not None and parameters is None and mix is None \
            else ("wet/dry" if mix is not None and not parameters else
                  f"{', '.join(parameters)}" if parameters else "settings")
        label = f"{self._chain_words(stem)} {slots[i].label} {what}"

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s[i] = new
            return s

        self._set_chain(label, stem, change, coalesce=coalesce, key=f"fx {stem} {i} {what}")

    def move_fx(self, stem: str | None, index: int, to: int) -> None:
        """Move slot ``index`` to position ``to`` (0-based; the others keep their order). Order is what
        the audio goes through, so a stem's move re-analyses that stem (unless only bypassed slots move)."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        j = self._check_index(slots, to, f"{self._chain_words(stem)} effect")

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s.insert(j, s.pop(i))
            return s

        self._set_chain(f"move {slots[i].label} {'up' if j < i else 'down'} in {self._chain_words(stem)}",
                        stem, change)

    def set_fx_state(self, stem: str | None, index: int, raw_state: str | None,
                     parameters: Mapping[str, Any] | None = None) -> None:
        """Slot ``index`` takes a state made outside the chain editor (the plugin's own window):
        ``raw_state`` (base64) and the named ``parameters`` read back with it, replacing the old ones.
        One undo step; a no-op when nothing changed."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        try:
            new = FxSlot.model_validate({**slots[i].model_dump(), "raw_state": raw_state,
                                         "parameters": dict(parameters or {})})
        except ValueError as e:
            raise ProjectError(f"{slots[i].label}: the state from its window was refused ({e})") from None

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s[i] = new
            return s

        self._set_chain(f"{self._chain_words(stem)} {slots[i].label} edited in its window", stem, change)

