"""The Session's side of playback: which player, which mix, and whether the audio drives the playhead.

:class:`PlaybackController` opens the :class:`~bridge.playback.player.AudioPlayer` at the first
play, renders the mix (:func:`render_mix`) on the Session's CPU pool after every edit that changes
it, and reports through :mod:`bridge.playback.events`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import MissingDependency, PlaybackError
from bridge.playback.events import AudioUnavailable, MixFailed, MixReady
from bridge.playback.player import MIN_LOOP_S, AudioPlayer


def render_mix(project, project_dir: str | os.PathLike[str], *, sample_rate: int,
               duration_seconds: float | None = None, solo: Collection[str] = (),
               skip: Collection[str] = ()) -> np.ndarray:
    """The project's mix as the export makes it (gains, mutes, offsets, limiter), with ``solo``
    (stem names: only these sound) and ``skip`` (stems left out) applied.

    Returns
    -------
    np.ndarray
        float32, shape (2, samples) at ``sample_rate``; covers song time [0, duration).

    Raises
    ------
    AudioError
        A stem cannot be read.
    """
    from bridge.analysis.project import song_duration_seconds
    from bridge.export.render import mix_project_audio

    project_dir = Path(project_dir)
    if duration_seconds is None:
        duration_seconds = song_duration_seconds(project, project_dir, skip=skip)
    return mix_project_audio(project, project_dir, sample_rate=sample_rate, duration_seconds=duration_seconds,
                             solo=solo, skip=skip)


class PlaybackController:
    """Owns the :class:`AudioPlayer` of a Session (opened at the first play, with the settings of
    :meth:`configure`), keeps its mix in step with the project, and says where the audio is.

    Parameters
    ----------
    submit : callable
        Runs a function off the caller's thread (the Session's CPU pool's ``submit``): mixes are
        rendered there, never on the GUI thread.
    emit : callable
        Receives :class:`AudioUnavailable`, :class:`MixReady`, :class:`MixFailed`.
    project_source : callable
        Returns ``(project, project_dir, missing stem names)`` now.
    enabled, device, blocksize : see :meth:`configure`.
    """

    def __init__(self, *, submit, emit, project_source, enabled: bool = False,
                 device: int | str | None = None, blocksize: int = 0) -> None:
        self._submit = submit
        self._emit = emit
        self._project_source = project_source
        self.enabled = bool(enabled)
        self.device = device
        self.blocksize = int(blocksize)
        self.player: AudioPlayer | None = None
        self.active = False  # the audio drives the playhead
        self.solo: frozenset[str] = frozenset()
        self.loop: tuple[float, float] | None = None
        self._mix_generation = 0
        self._lock = threading.Lock()

    def configure(self, *, enabled: bool | None = None, device: Any = ...,
                  blocksize: int | None = None) -> bool:
        """Turn playback on/off, pick the output device (index, name or label; None = default) and
        the buffer size (frames; 0 = automatic). A new device or buffer size takes effect at the
        next :meth:`start` (the open stream is closed now). Returns whether the player was closed."""
        if blocksize is not None and blocksize < 0:
            raise PlaybackError(f"Audio buffer size {blocksize} is negative; use 0 (automatic) or e.g. 256, 512.")
        reopen = (device is not ... and device != self.device) or (blocksize is not None and blocksize != self.blocksize)
        if enabled is not None:
            self.enabled = bool(enabled)
        if device is not ...:
            self.device = device
        if blocksize is not None:
            self.blocksize = int(blocksize)
        if (reopen or not self.enabled) and self.player is not None:
            self._close_player()
            return True
        return False

    # -- transport ---------------------------------------------------------------------------------
    def start(self, position_s: float) -> bool:
        """Play from ``position_s``; False (after an :class:`AudioUnavailable` event) when it cannot."""
        if not self.enabled:
            return False
        player = self.player
        if player is None:
            try:
                player = AudioPlayer(device=self.device, blocksize=self.blocksize)
            except (PlaybackError, MissingDependency) as e:
                self._emit(AudioUnavailable(str(e)))
                return False
            self.player = player
            if self.loop is not None:
                player.set_loop(*self.loop)
            self.refresh_mix()
        player.seek(position_s)
        try:
            player.play()
        except PlaybackError as e:
            self._emit(AudioUnavailable(str(e)))
            self._close_player()
            return False
        self.active = True
        return True

    def stop(self) -> float | None:
        """Pause the audio; returns the song time heard last (None when the audio was not playing)."""
        if not self.active or self.player is None:
            return None
        self.active = False
        self.player.pause()
        return self.player.position_s()

    def seek(self, seconds: float) -> None:
        if self.player is not None:
            self.player.seek(seconds)

    def set_loop(self, start_s: float | None, end_s: float | None = None) -> None:
        """Loop [start_s, end_s) while playing; None ends looping."""
        if start_s is not None and (end_s is None or not (0 <= start_s and start_s + MIN_LOOP_S <= end_s)):
            raise PlaybackError(f"loop region {start_s!r}–{end_s!r} s is too short; pick 0 <= start and "
                                f"end at least {MIN_LOOP_S * 1000:.0f} ms after it")
        self.loop = None if start_s is None else (float(start_s), float(end_s))
        if self.player is not None:
            self.player.set_loop(start_s, end_s)

    def follow(self) -> tuple[float, bool] | None:
        """(song seconds heard now, still playing) while the audio drives the playhead, else None.
        Once the song's end was heard this reports (end, False) once and stops driving."""
        player = self.player
        if not self.active or player is None:
            return None
        playing = player.playing
        position = player.position_s()
        if not playing:
            self.active = False
        return position, playing

    # -- the mix ------------------------------------------------------------------------------------
    def set_solo(self, names: Collection[str]) -> None:
        """Only these stems sound (monitoring only: the export and the project are unchanged)."""
        names = frozenset(names)
        if names != self.solo:
            self.solo = names
            self.refresh_mix()

    def refresh_mix(self) -> None:
        """Render the mix again (off the caller's thread) for the project as it is now."""
        player = self.player
        if player is None:
            return
        with self._lock:
            self._mix_generation += 1
            generation = self._mix_generation
        project, project_dir, missing = self._project_source()
        solo = self.solo

        def job() -> None:
            from bridge.errors import BridgeError

            try:
                mix = render_mix(project, project_dir, sample_rate=player.sample_rate, solo=solo, skip=missing)
            except BridgeError as e:
                self._emit(MixFailed(f"Playback: {e}"))
                return
            with self._lock:
                if generation != self._mix_generation or self.player is not player:
                    return  # a newer edit (or another device) won
                player.set_mix(mix)
            self._emit(MixReady(generation, mix.shape[1] / player.sample_rate))

        self._submit(job)

    # -- lifetime -----------------------------------------------------------------------------------
    def _close_player(self) -> None:
        player, self.player = self.player, None
        self.active = False
        if player is not None:
            player.close()

    def close(self) -> None:
        self._close_player()
