"""Session events: plain frozen dataclasses drained with :meth:`Session.poll_events`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.session._helpers import Origin

if TYPE_CHECKING:
    pass


# =================================================================================================
# Events
# =================================================================================================

@dataclass(frozen=True)
class ProjectChanged:
    """The project changed. ``parts``: which top-level fields differ (stems, mappings, sections,
    engine, render, tempo, name…). The undo state is included so a GUI can update its menu."""

    label: str
    origin: Origin
    parts: frozenset[str]
    can_undo: bool
    can_redo: bool
    undo_label: str | None
    redo_label: str | None


@dataclass(frozen=True)
class ProjectSaved:
    path: Path
    autosave: bool


@dataclass(frozen=True)
class SaveFailed:
    message: str


@dataclass(frozen=True)
class ProjectFileInvalid:
    """``stembridge.json`` was changed outside the app and cannot be used; the session's state is kept."""

    message: str


@dataclass(frozen=True)
class AnalysisStarted:
    reason: str
    stems: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisFinished:
    reason: str
    duration_seconds: float
    tempo_bpm: float
    elapsed_s: float


@dataclass(frozen=True)
class AnalysisFailed:
    reason: str
    message: str


@dataclass(frozen=True)
class StemFileChanged:
    """A stem's file has new content (a re-bounce); it is being re-analysed."""

    name: str
    path: Path


@dataclass(frozen=True)
class StemFileAdded:
    """A new audio file appeared in a stems folder and was added as a stem (undoable)."""

    name: str
    path: Path
    role: str


@dataclass(frozen=True)
class StemFileMissing:
    """A stem's file is gone. The stem stays in the project (and its last analysis stays in use)
    until the file is back or the stem is removed."""

    name: str
    path: Path


@dataclass(frozen=True)
class StemFileReturned:
    name: str
    path: Path


@dataclass(frozen=True)
class StemFileUnreadable:
    """A file in a stems folder stopped changing but does not decode (incomplete or corrupt)."""

    path: Path
    message: str
