"""Editing chains: make a slot from what the producer typed, change its settings, read/write chains.

Pure project edits (functions return a new Project; saving is the caller's job) plus the plugin
loading needed to validate settings and capture a hosted plugin's full state (``raw_state``).
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from bridge.errors import PluginError
from bridge.plugins.builtins import BUILTIN_EFFECTS, PLUGIN_BUNDLE_SUFFIXES
from bridge.plugins.chain import _process, build_plugin
from bridge.project.schema import FxSlot, ParamValue, Project
from bridge.project.store import format_option_errors
from bridge.vocab import names_matching

#: A slot's fields by the `stembridge fx` option that sets them (for error messages).
SLOT_OPTIONS = {"mix": "--mix", "name": "--name"}

#: Samples of silence run through a hosted plugin before its state is read: DPF plugins (the Zam
#: ones among them) apply parameter changes at the next audio block, so without it ``raw_state``
#: would still hold the old settings.
_SETTLE_SAMPLES = 256
_SETTLE_RATE = 48000


def capture_state(plugin) -> str:
    """A hosted plugin's full state as base64 (after one short silent block, see above)."""
    _process(plugin, np.zeros((2, _SETTLE_SAMPLES), dtype=np.float32), _SETTLE_RATE)
    return base64.b64encode(bytes(plugin.raw_state)).decode("ascii")


def parse_param(text: str) -> tuple[str, ParamValue]:
    """``name=value`` → (name, value): a number, true/false/on/off, else the text (a named value)."""
    if "=" not in text:
        raise PluginError(f"--param {text!r} must be NAME=VALUE, e.g. --param cutoff_frequency_hz=800")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key:
        raise PluginError(f"--param {text!r} has no parameter name before '='")
    lowered = raw.lower()
    if lowered in ("true", "on", "yes"):
        return key, True
    if lowered in ("false", "off", "no"):
        return key, False
    try:
        value = float(raw)
    except ValueError:
        return key, raw
    if not np.isfinite(value):
        raise PluginError(f"--param {text!r}: {raw} is not a finite number")
    return key, value


def resolve_plugin(text: str, *, name: str | None = None, cache_file: str | Path | None = None,
                   timeout_s: float = 20.0) -> tuple[str, str | None]:
    """What ``fx add PLUGIN`` means: (FxSlot.plugin, FxSlot.name).

    ``text`` is a built-in's class name (any case), the path of a bundle (loaded first in a child
    process, so a crashing plugin cannot take this one down), or the name of a scanned plugin.
    """
    for builtin in BUILTIN_EFFECTS:
        if text.lower() == builtin.lower():
            return builtin, None
    if text.rstrip("/\\").lower().endswith(PLUGIN_BUNDLE_SUFFIXES) or Path(text).exists():
        from bridge.plugins.scan import probe_bundles

        path = Path(text).expanduser().resolve()
        if not path.exists():
            raise PluginError(f"plugin {text!r} does not exist; check the path, or give a scanned plugin's "
                              "name (stembridge plugins list)")
        outcome = probe_bundles([str(path)], timeout_s=timeout_s)[str(path)]
        if "error" in outcome:
            raise PluginError(f"plugin {path} cannot be used: {outcome['error']}")
        names = [p["name"] for p in outcome["plugins"]]
        if name is None and len(names) > 1:
            raise PluginError(f"{path} holds {len(names)} plugins ({', '.join(names)}); pick one with --name")
        if name is not None and name not in names:
            raise PluginError(f"{path} holds no plugin named {name!r}; it holds {', '.join(names)}")
        return str(path), name or (names[0] if names else None)
    from bridge.plugins.scan import find_known_plugin

    info = find_known_plugin(text, cache_file=cache_file)
    if info is None:
        raise PluginError(
            f"no plugin {text!r}: it is not a built-in ({', '.join(BUILTIN_EFFECTS)}), not a path to a "
            ".vst3/.component bundle, and no scanned plugin has that name; run `stembridge plugins scan` "
            "(add --folder DIR for your own folders) and `stembridge plugins list`")
    return info.path, info.name


def make_slot(plugin: str, *, name: str | None = None, parameters: dict[str, ParamValue] | None = None,
              mix: float = 1.0, cache_file: str | Path | None = None, tempo_bpm: float | None = 120.0) -> FxSlot:
    """A new slot for ``plugin`` (see :func:`resolve_plugin`), its settings checked by loading it;
    a hosted plugin's full state is captured into ``raw_state``."""
    where, plugin_name = resolve_plugin(plugin, name=name, cache_file=cache_file)
    try:
        slot = FxSlot(plugin=where, name=plugin_name, parameters=dict(parameters or {}), mix=mix)
    except ValidationError as e:
        raise PluginError(format_option_errors(e, names=SLOT_OPTIONS)) from None
    return _with_state(slot, cache_file=cache_file, tempo_bpm=tempo_bpm)


def _with_state(slot: FxSlot, *, cache_file: str | Path | None, tempo_bpm: float | None) -> FxSlot:
    built = build_plugin(slot, tempo_bpm=tempo_bpm, cache_file=cache_file)  # raises for bad settings
    if slot.is_builtin:
        return slot
    return slot.model_copy(update={"raw_state": capture_state(built)})


def update_slot(slot: FxSlot, *, parameters: dict[str, ParamValue] | None = None, mix: float | None = None,
                bypass: bool | None = None, cache_file: str | Path | None = None,
                tempo_bpm: float | None = 120.0) -> FxSlot:
    """``slot`` with parameters merged in / mix / bypass changed; the new settings are checked by
    loading the plugin and its ``raw_state`` re-captured. PluginError when the plugin is missing."""
    data = slot.model_dump()
    if parameters:
        data["parameters"] = {**slot.parameters, **parameters}
    if mix is not None:
        data["mix"] = mix
    if bypass is not None:
        data["bypass"] = bypass
    try:
        new = FxSlot.model_validate(data)
    except ValidationError as e:
        raise PluginError(format_option_errors(e, names=SLOT_OPTIONS)) from None
    if parameters:
        new = _with_state(new, cache_file=cache_file, tempo_bpm=tempo_bpm)
    return new


def chain_of(project: Project, stem: str | None) -> list[FxSlot]:
    """A stem's chain, or the master chain when ``stem`` is None."""
    if stem is None:
        return list(project.master_fx)
    return list(_stem(project, stem).fx)


def with_chain(project: Project, stem: str | None, slots: list[FxSlot]) -> Project:
    """A copy of ``project`` with the stem's (or the master's, ``stem=None``) chain replaced."""
    if stem is None:
        return project.model_copy(update={"master_fx": list(slots)})
    name = _stem(project, stem).name
    stems = [s.model_copy(update={"fx": list(slots)}) if s.name == name else s for s in project.stems]
    return project.model_copy(update={"stems": stems})


def slot_index(slots: list[FxSlot], number: int, *, where: str) -> int:
    """A 1-based slot number as `fx list` shows it → a list index (PluginError when out of range)."""
    if not 1 <= number <= len(slots):
        raise PluginError(f"{where} has {len(slots)} slot(s); slot {number} does not exist (see `stembridge fx list`)")
    return number - 1


def stem_name(project: Project, typed: str) -> str:
    """The name of the stem ``typed`` means: spelled exactly so, or the one stem named so in
    another case (``--stem Drums`` for ``drums``, as the DAW shows it). PluginError naming the
    value and listing the stems when none or several (names differing only in case) match."""
    names = [s.name for s in project.stems]
    hits = names_matching(typed, names)
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(names) or "(none)"
    if hits:
        raise PluginError(f"stem {typed!r} is ambiguous: the stems {' and '.join(repr(h) for h in hits)} differ only "
                          f"in case; type the name exactly as it is spelled. Stems: {listed}")
    raise PluginError(f"the project has no stem {typed!r}; its stems are: {listed}")


def _stem(project: Project, name: str):
    return project.stem(stem_name(project, name))
