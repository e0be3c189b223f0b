"""The one exception tree of stembridge.

Every error a user can cause is a :class:`BridgeError`. Messages say *what* went wrong (with the
offending value), *why* it matters, and *the fix*::

    BridgeError
    ├── ProjectError        stembridge.json missing, malformed, wrong schema version, bad field
    ├── AudioError          a stem or mix that cannot be read or is unusable (empty, NaN, >8 ch…)
    ├── AnalysisError       analysis could not produce a result (e.g. no audio at all)
    ├── TransportError      a sync source could not be opened (port busy, no MIDI backend)
    ├── RenderError         video/audio could not be written
    ├── PluginError         a plugin (VST3/AU or built-in) is missing, cannot load, or a setting is wrong
    ├── PlaybackError       no audio output (PortAudio missing, no output device, stream failed)
    ├── MissingDependency   an optional package (torch, diffusers, demucs…) is not installed
    └── Cancelled           the user cancelled a long job; nothing half-written was left behind
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of all stembridge errors; ``str(err)`` is meant to be shown to the user as is."""


class ProjectError(BridgeError):
    """The project file or one of its fields is invalid."""


class AudioError(BridgeError):
    """An audio file cannot be used. The message names the file, the problem and the fix."""


class AnalysisError(BridgeError):
    """Analysis could not produce a usable result."""


class TransportError(BridgeError):
    """A transport (sync) source could not be opened or configured."""


class RenderError(BridgeError):
    """Rendering or encoding the output failed."""


class PluginError(BridgeError):
    """A plugin cannot be found or loaded, or a slot's setting is unknown or out of range."""


class PlaybackError(BridgeError):
    """Audio playback cannot start: no PortAudio, no output device, or the device refused the
    stream. The app keeps working without sound; the message says how to get sound back."""


class MissingDependency(BridgeError):
    """An optional dependency is not installed; the message says how to install it."""

    def __init__(self, package: str, *, feature: str, extra: str | None = None) -> None:
        hint = (
            f'pip install "stembridge[{extra}]"' if extra else f"pip install {package}"
        )
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not installed. "
            f"Install it with: {hint}"
        )
        self.package = package
        self.feature = feature


class Cancelled(BridgeError):
    """A long job was cancelled by the user; partial output was removed."""

    def __init__(self, what: str = "the job") -> None:
        super().__init__(f"Cancelled {what}; nothing half-written was kept.")
