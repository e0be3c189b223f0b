"""Build a chain of effects (:class:`~bridge.project.schema.FxSlot`) and run it over audio.

Audio is float32 ``(channels, samples)``. A slot that cannot run — its plugin is not installed here,
a setting is wrong, it raises, or it returns NaN/inf — is **bypassed for this render** and reported
by name (``ChainResult.problems``); the project keeps the slot unchanged.

Channels: a mono plugin on a stereo stem runs dual-mono (each channel on its own, same settings),
as DAWs do; a stereo-only plugin on a mono stem gets the stem on both sides.

Latency: pedalboard delays its output by each hosted plugin's ``reported_latency_samples`` and
trims it again, so what comes back is aligned with the input (checked in tests/test_plugins.py
with ZaMaximX2's 480-sample look-ahead); nothing is shifted here a second time.

Threads: pedalboard loads hosted plugins on the main thread only; called from another thread,
:func:`apply_chain` runs the chain on the main thread of a child process (spawned per call).

Tempo: pedalboard hands hosted plugins no tempo or playhead (a tempo-synced plugin runs at its own
default tempo). Tempo-synced built-in settings (``Delay.delay_beats``) are converted with the
project's tempo instead (``tempo_bpm``; callers pass :func:`bridge.analysis.project.fx_tempo_bpm`).
"""

from __future__ import annotations

import base64
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge.errors import PluginError
from bridge.plugins.builtins import TEMPO_SYNCED
from bridge.project.schema import FxSlot, Project, parse_meter
from bridge.timebase import beat_quarters

log = logging.getLogger(__name__)

# JUCE creates plugin instances on one thread at a time (its message manager); processing is free.
_LOAD_LOCK = threading.Lock()
#: glibc's libm for :func:`restore_float_environment` (False: not glibc; None: not looked up yet).
_LIBM = None


def restore_float_environment() -> None:
    """Undo what loading a plugin did to this process's floating-point mode.

    A plugin library built with -ffast-math (every zam-plugins VST3 here, measured) switches the CPU
    to flush subnormal numbers to zero when it loads, for the whole process and for good (its
    ``process`` restores what it changes; its loading does not). Every later computation in
    stembridge (analysis, rendering, encoding) then ran in another mode than in a process that
    loaded no plugin, so the same project could give other numbers in the app than in a render
    worker, and libraries that check the mode refuse to run (hypothesis). glibc's
    ``fesetenv(FE_DFL_ENV)`` restores the default (FE_DFL_ENV is ``(const fenv_t *) -1`` there);
    ctypes because nothing in numpy or the standard library sets the mode. Elsewhere: nothing.
    """
    global _LIBM
    if _LIBM is None:
        import ctypes
        import ctypes.util
        import platform

        glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
        name = ctypes.util.find_library("m") if glibc else None
        _LIBM = ctypes.CDLL(name) if name else False
    if _LIBM:
        import ctypes

        _LIBM.fesetenv(ctypes.c_void_p(-1))


@dataclass
class ChainResult:
    audio: np.ndarray
    #: one sentence per slot that was bypassed for this render (names the plugin and why)
    problems: list[str] = field(default_factory=list)


def chain_tempo_bpm(project: Project) -> float | None:
    """The tempo tempo-synced effects get before any beat tracking: the DAW's or the producer's, in
    quarter notes a minute (``Delay.delay_beats`` counts quarters, as a DAW's synced delay does
    whatever the meter: a producer's 60 dotted beats a minute in 6/8 is 90).

    Here, beside the chains that use it, so ``stembridge fx`` (plugins layer) can ask for it
    without importing analysis; :mod:`bridge.analysis.project` re-exports it."""
    if project.tempo.tempo_bpm:
        return project.tempo.tempo_bpm
    rhythm = project.rhythm
    if not rhythm.tempo_bpm:
        return None
    quarters = beat_quarters(*parse_meter(rhythm.meter)) if rhythm.meter else 1.0
    return rhythm.tempo_bpm * (rhythm.tempo_factor or 1.0) * quarters


def active_slots(slots: Sequence[FxSlot]) -> list[FxSlot]:
    return [s for s in slots if not s.bypass]


def builtin_parameter_names(class_name: str) -> list[str]:
    import pedalboard

    cls = getattr(pedalboard, class_name)
    names = [k for k in dir(cls) if isinstance(getattr(cls, k, None), property)
             and k not in ("is_effect", "is_instrument")]
    names += [beats for (owner, beats) in TEMPO_SYNCED if owner == class_name]
    return sorted(names)


def locate_plugin(slot: FxSlot, *, cache_file: str | Path | None = None) -> Path | None:
    """The slot's bundle on this machine: its stored path, else a scanned plugin of the same name
    and format (a project made on another machine); None when it is not installed here."""
    if slot.is_builtin:
        return None
    path = Path(slot.plugin)
    if path.exists():
        return path
    if slot.name:
        from bridge.plugins.scan import find_known_plugin

        info = find_known_plugin(slot.name, cache_file=cache_file)
        if info is not None and Path(info.path).suffix.lower() == path.suffix.lower() and Path(info.path).exists():
            return Path(info.path)
    return None


def _set(plugin: object, key: str, value: object, *, label: str, valid: Sequence[str]) -> None:
    if key not in valid:
        raise PluginError(f"{label} has no parameter {key!r}; its parameters are: {', '.join(valid)}")
    try:
        setattr(plugin, key, value)
    except TypeError:  # pybind's text lists C++ signatures: say what kind of value it takes instead
        now = getattr(plugin, key, None)
        kind = {bool: "true or false", int: "a number", float: "a number", str: "text"}.get(type(now), "another value")
        like = "" if now is None else f" (it is {now!r} now)"
        raise PluginError(f"{label}: {key} = {value!r} is the wrong kind of value; give {kind}{like}") from None
    except ValueError as e:
        raise PluginError(f"{label}: {key} = {value!r} was refused ({e}); pick a value in the parameter's range") from None


def build_plugin(slot: FxSlot, *, tempo_bpm: float | None = None, cache_file: str | Path | None = None):
    """The slot's effect as a pedalboard plugin with its state (``raw_state``, then ``parameters``).

    Raises PluginError when the plugin is missing, cannot load, or a parameter is unknown/refused.
    """
    import pedalboard

    label = slot.label
    if slot.is_builtin:
        plugin = getattr(pedalboard, slot.plugin)()
        valid = builtin_parameter_names(slot.plugin)
        for key, value in slot.parameters.items():
            seconds_key = TEMPO_SYNCED.get((slot.plugin, key))
            if seconds_key is not None:
                if not tempo_bpm or not math.isfinite(tempo_bpm) or tempo_bpm <= 0:
                    raise PluginError(f"{label}: {key} needs the song's tempo, which is not known; set the "
                                      f"project's tempo or use {seconds_key} instead")
                _set(plugin, seconds_key, float(value) * 60.0 / tempo_bpm, label=label, valid=valid)
            else:
                _set(plugin, key, value, label=label, valid=valid)
        return plugin
    path = locate_plugin(slot, cache_file=cache_file)
    if path is None:
        raise PluginError(f"plugin {label!r} is not installed on this machine (looked for {slot.plugin}); "
                          "install it, or scan its folder with `stembridge plugins scan --folder DIR`")
    try:
        with _LOAD_LOCK:
            try:
                plugin = pedalboard.load_plugin(str(path), plugin_name=slot.name) if slot.name else \
                    pedalboard.load_plugin(str(path))
            finally:
                restore_float_environment()
    except (ImportError, ValueError, RuntimeError) as e:
        raise PluginError(f"plugin {label!r} ({path}) could not be loaded: {e}") from None
    if slot.raw_state is not None:
        try:
            plugin.raw_state = base64.b64decode(slot.raw_state)
        except (ValueError, RuntimeError) as e:
            raise PluginError(f"plugin {label!r} refused its saved state ({e}); remove raw_state from the "
                              "slot to start from the plugin's defaults") from None
    valid = list(plugin.parameters.keys())
    for key, value in slot.parameters.items():
        _set(plugin, key, value, label=label, valid=valid)
    return plugin


def _process(plugin, audio: np.ndarray, sample_rate: float) -> np.ndarray:
    try:
        return plugin.process(audio, sample_rate, reset=True)
    except ValueError as e:
        if "channel" not in str(e):
            raise
    if audio.shape[0] > 1:  # a mono plugin on a multi-channel stem: dual-mono
        return np.concatenate([plugin.process(audio[c:c + 1], sample_rate, reset=True)
                               for c in range(audio.shape[0])])
    return plugin.process(np.repeat(audio, 2, axis=0), sample_rate, reset=True)


def _fit(wet: np.ndarray, n_samples: int) -> np.ndarray:
    wet = np.asarray(wet, dtype=np.float32)
    if wet.shape[1] > n_samples:
        return wet[:, :n_samples]
    if wet.shape[1] < n_samples:
        return np.pad(wet, ((0, 0), (0, n_samples - wet.shape[1])))
    return wet


def run_slot(slot: FxSlot, audio: np.ndarray, sample_rate: float, *, tempo_bpm: float | None = None,
             cache_file: str | Path | None = None) -> np.ndarray:
    """One slot over ``audio`` (float32 (channels, samples)), wet/dry applied. Raises PluginError."""
    plugin = build_plugin(slot, tempo_bpm=tempo_bpm, cache_file=cache_file)
    try:
        wet = _fit(_process(plugin, audio, sample_rate), audio.shape[1])
    except Exception as e:  # noqa: BLE001 - any failure inside a plugin bypasses that plugin only
        raise PluginError(f"plugin {slot.label!r} failed while processing ({type(e).__name__}: {e})") from None
    if not np.isfinite(wet).all():
        raise PluginError(f"plugin {slot.label!r} returned NaN or infinite samples")
    if slot.mix >= 1.0:
        return wet
    dry = audio if audio.shape[0] == wet.shape[0] else np.broadcast_to(audio.mean(axis=0, keepdims=True), wet.shape)
    return (np.float32(slot.mix) * wet + np.float32(1.0 - slot.mix) * dry).astype(np.float32)


def apply_chain(
    audio: np.ndarray,
    sample_rate: float,
    slots: Sequence[FxSlot],
    *,
    tempo_bpm: float | None = None,
    where: str = "chain",
    cache_file: str | Path | None = None,
) -> ChainResult:
    """Run ``slots`` in order over ``audio``; bypassed slots are skipped.

    Parameters
    ----------
    audio : float32 array, shape (channels, samples)
    sample_rate : Hz
    slots : the chain (a stem's ``fx`` or the project's ``master_fx``)
    tempo_bpm : the song's quarter-note tempo, for tempo-synced built-in settings (``Delay.delay_beats``)
    where : named in problems, e.g. "stem 'Bass'" or "master"

    Returns
    -------
    ChainResult
        ``audio``: float32, same number of samples (the channel count may change, e.g. a stereo
        reverb on a mono stem); ``problems``: the slots bypassed for this render and why.
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise PluginError(f"audio of shape {audio.shape} is not (channels, samples); pass a 2-D array")
    hosted = [s for s in active_slots(slots) if not s.is_builtin]
    if hosted and threading.current_thread() is not threading.main_thread():
        # pedalboard loads and resets hosted plugins on the main thread only ("must be reloaded on
        # the main thread"); analysis and the app call this from worker threads, so the chain runs
        # on the main thread of a child process — which also keeps a plugin that crashes while
        # processing from taking the app down.
        return _apply_in_child(audio, sample_rate, list(slots), tempo_bpm=tempo_bpm, where=where,
                               cache_file=cache_file, labels=[s.label for s in hosted])
    problems = []
    for index, slot in enumerate(slots):
        if slot.bypass:
            continue
        try:
            audio = run_slot(slot, audio, sample_rate, tempo_bpm=tempo_bpm, cache_file=cache_file)
        except PluginError as e:
            msg = f"{where}, slot {index + 1}: {e}; bypassed for this render"
            log.warning("%s", msg)
            problems.append(msg)
    return ChainResult(audio=audio, problems=problems)


def _apply_in_child(audio: np.ndarray, sample_rate: float, slots: list[FxSlot], *, tempo_bpm: float | None,
                    where: str, cache_file: str | Path | None, labels: list[str]) -> ChainResult:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(apply_chain, audio, sample_rate, slots, tempo_bpm=tempo_bpm, where=where,
                               cache_file=cache_file).result()
    except BrokenProcessPool:
        msg = (f"{where}: the plugin process crashed while running {', '.join(labels)}; the whole chain "
               "is bypassed for this render (bypass the plugin that crashes, or update it)")
        log.warning("%s", msg)
        return ChainResult(audio=audio, problems=[msg])


def chain_fingerprint(slots: Sequence[FxSlot], *, cache_file: str | Path | None = None) -> list:
    """What decides a chain's output, for cache keys: every active slot's settings and the identity
    of its plugin binary here (path, modification time, size; "missing" when not installed).
    Bypassed slots are left out (they change nothing); an empty list means the chain does nothing."""
    from bridge.plugins.scan import bundle_fingerprint

    out = []
    for slot in active_slots(slots):
        entry: list = [slot.model_dump(mode="json")]
        if not slot.is_builtin:
            path = locate_plugin(slot, cache_file=cache_file)
            entry.append([str(path), *bundle_fingerprint(path)] if path is not None else "missing")
        out.append(entry)
    return out
