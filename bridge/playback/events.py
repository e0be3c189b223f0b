"""Playback's events (plain frozen dataclasses; the Session forwards them to ``poll_events()`` and
re-exports them as part of its event API). Imports neither numpy nor sounddevice."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioUnavailable:
    """Session event: playback was asked for but cannot sound; the playhead runs silently.
    ``message`` says why and how to fix it (shown as is)."""

    message: str


@dataclass(frozen=True)
class MixReady:
    """Session event: the mix the player plays was (re)rendered (after a gain/mute/offset/solo edit)."""

    generation: int
    duration_seconds: float


@dataclass(frozen=True)
class MixFailed:
    """Session event: the mix could not be rendered (a stem unreadable); playback stays silent."""

    message: str

