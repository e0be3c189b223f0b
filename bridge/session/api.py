"""The public names an app built on :class:`~bridge.session.Session` uses besides the Session itself.

The GUI imports bridge only through ``bridge.session`` (tests/test_gui_seam.py checks it): these are
the small public types, vocabularies and functions it needs — errors, cancel tokens, the visual
parameter vocabulary, export presets, looks, effect metadata, calibration, project creation.
They are re-exported, not copied: each name below is the bridge object itself, looked up in its
home module on every access (so a test that patches the home module patches what the app calls).

Lookups are lazy (httpx's pattern: private modules, public names re-exported) because several homes
import heavy or optional things (moderngl, PyAV, pedalboard, sounddevice, Demucs' torch):
``import bridge.session`` stays numpy + pydantic only.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from bridge.errors import TransportError

#: Public name → home module. Read by :func:`__getattr__` of this module and of ``bridge.session``.
EXPORTS: dict[str, str] = {
    # errors and jobs
    "BridgeError": "bridge.errors",
    "Cancelled": "bridge.errors",
    "MissingDependency": "bridge.errors",
    "CancelToken": "bridge.jobs",
    "atomic_output": "bridge.fsutil",
    # projects
    "project_file": "bridge.project.store",
    "copy_project": "bridge.project.store",
    "describe_relink": "bridge.project.relink",
    "reading_relation": "bridge.analysis.corrections",
    "tempo_span_text": "bridge.analysis.corrections",
    "tempo_span_bpm": "bridge.analysis.types",
    "new_project": "bridge.project.create",
    "new_project_from_mix": "bridge.project.create",
    "AUDIO_EXTENSIONS": "bridge.stems.load",
    "SECTION_TRANSITIONS": "bridge.project.schema",
    "STANDARD_ROLES": "bridge.project.schema",
    # mappings: the visual-parameter vocabulary
    "PARAMETERS": "bridge.mapping.params",
    "PARAMETER_NAMES": "bridge.mapping.params",
    "unit_of": "bridge.mapping.params",
    "MIX": "bridge.mapping.sources",
    "STEM_FEATURES": "bridge.mapping.sources",
    "OSCILLATOR_SHAPES": "bridge.mapping.sources",
    # looks (shader engine)
    "available_looks": "bridge.visuals.shader_looks",
    "add_look": "bridge.visuals.shader_looks",
    "shader_targets": "bridge.visuals.shader_looks",
    "create_gl_context": "bridge.gl",
    "load_isf": "bridge.visuals.isf",
    "default_look": "bridge.visuals.character",
    "THUMBNAIL_SIZE": "bridge.visuals.thumbnails",
    "thumbnail": "bridge.visuals.thumbnails",
    # export
    "CODECS": "bridge.export.presets",
    "PRESETS": "bridge.export.presets",
    "ENCODE_SPEEDS": "bridge.project.schema",
    "DEFAULT_ENCODE_SPEED": "bridge.project.schema",
    "ENCODE_SPEED_PRESETS": "bridge.export.presets",
    "available_codecs": "bridge.export.presets",
    "encoders_available": "bridge.export.presets",
    "is_hardware_encoder": "bridge.export.presets",
    "render_project": "bridge.export.render",
    # effects
    "BUILTIN_EFFECTS": "bridge.plugins.builtins",
    "known_plugins": "bridge.plugins.scan",
    "describe_parameters": "bridge.plugins.params",
    "open_editor": "bridge.plugins.editor",
    # audio output
    "BUFFER_SIZES": "bridge.playback.player",
    "output_devices": "bridge.playback.player",
    # separation (Demucs; torch only when it runs)
    "separate_mix_to_folder": "bridge.separation",
    "ModelNotAvailable": "bridge.separation",
    "SeparationError": "bridge.separation",
    "resolve_model_spec": "bridge.separation",
    # DAW sync
    "SyncSpec": "bridge.transport.sync_spec",
    "POSITION_SOURCES": "bridge.transport.sync_spec",
    "MIDI_SOURCES": "bridge.transport.sync_spec",
    "DEFAULT_ADDRESSES": "bridge.transport.sync_spec",
    "option_name": "bridge.transport.sync_spec",
    "MarkerRequest": "bridge.transport.osc_io",
    "MAX_LATENCY_MS": "bridge.transport.calibration",
    "beat_flash": "bridge.transport.calibration",
    "load_latencies": "bridge.transport.calibration",
    "save_latencies": "bridge.transport.calibration",
    "save_latency": "bridge.transport.calibration",
    "setup_key": "bridge.transport.calibration",
    "install_daw_script": "bridge.daw_install",
}

#: Functions defined here (not re-exports).
FUNCTIONS = ("midi_input_ports", "check_link_available", "stem_files")

__all__ = sorted(EXPORTS) + list(FUNCTIONS)


def __getattr__(name: str):
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))


def midi_input_ports(*, api: str | None = None) -> list[str]:
    """The MIDI input port names. Raises TransportError when no MIDI backend works (no ALSA/JACK…)
    or MissingDependency when python-rtmidi is not installed."""
    try:
        from bridge.transport import midi_io
    except ImportError as e:
        raise TransportError(f"MIDI input is not available in this installation ({e}).") from None
    return list(midi_io.list_midi_ports(api=api))


def check_link_available() -> None:
    """Raises MissingDependency (with the install hint) when Ableton Link (aalink) is not installed."""
    from bridge.transport.link import import_aalink

    import_aalink()


def stem_files(paths: Iterable[str | Path]) -> list[Path]:
    """The audio files ``paths`` name as stems: a file as it is, a folder as the stems inside it
    (:func:`bridge.stems.discover_stems`: audio files only, hidden files and full mixes left out).
    Raises AudioError (a BridgeError) for a folder without audio."""
    from bridge.stems import discover_stems

    files: list[Path] = []
    for p in map(Path, paths):
        files += discover_stems(p) if p.is_dir() else [p]
    return files

