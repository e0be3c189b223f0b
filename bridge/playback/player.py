"""The audio output: the project's mix through PortAudio (sounddevice), and the clock it gives.

The mix is the export's (:func:`bridge.export.render.mix_project_audio`: gains, mutes, offsets, the
limiter) plus a monitoring-only solo, rendered once at the device's rate as float32
``(channels, samples)`` and handed to :class:`AudioPlayer`, whose PortAudio callback only copies
slices of it (DESIGN.md "Threads": the audio thread allocates no buffers, takes no locks, and never
touches Qt).

The position the player reports is the sample **reaching the speaker now**: every block the
callback writes is stamped with PortAudio's ``outputBufferDacTime`` (when its first sample leaves
the converter, the output latency included) and :meth:`AudioPlayer.position_s` reads the stream's
own clock (``Stream.time``, the same time base) against those stamps. The playhead and the preview
follow that position, so picture and sound agree however large the device's buffers are.

Importing this module imports neither sounddevice nor PortAudio; :func:`import_sounddevice`
does, and turns every way that can fail into a :class:`~bridge.errors.PlaybackError` (or
:class:`~bridge.errors.MissingDependency`) whose message names the fix. The mix itself
(:func:`~bridge.playback.controller.render_mix`) and the Session's side of playback are in
:mod:`bridge.playback.controller`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.errors import MissingDependency, PlaybackError

#: Buffer sizes (frames per callback) offered in the preferences; 0 lets PortAudio choose.
BUFFER_SIZES: tuple[int, ...] = (0, 128, 256, 512, 1024, 2048, 4096)
#: Shortest loop region (s): each pass through it stamps the block it is in.
MIN_LOOP_S = 0.05
#: Stamps kept of the blocks handed to the device: enough to cover the blocks still in flight
#: between the callback and the speaker (a seek or a loop jump must not move the playhead before
#: the jump is heard).
_STAMPS = 64

_NO_PORTAUDIO = (
    "Audio playback needs the PortAudio library, which was not found ({detail}). Install it "
    "(Debian/Ubuntu: sudo apt-get install libportaudio2; Fedora: sudo dnf install portaudio; "
    "macOS/Windows: pip install --force-reinstall sounddevice, whose wheels include it), then "
    "restart stembridge. Until then the visuals play without sound."
)
_NO_OUTPUT = (
    "No audio output device found (PortAudio sees {apis}). Connect or enable a sound card, or start "
    "your sound server (PipeWire/PulseAudio, or JACK), then press Play again; pick the device in "
    "Preferences ▸ Audio. Until then the visuals play without sound."
)

_lock = threading.Lock()
_open_streams = 0  # PortAudio is re-initialised (to see new devices) only while none is open


def import_sounddevice(*, rescan: bool = False) -> Any:
    """Import sounddevice (and so PortAudio). ``rescan``: re-initialise PortAudio so devices and
    servers (a JACK server started since) that appeared after the first import are seen; skipped
    while one of our streams is open (re-initialising would kill it).

    Raises
    ------
    MissingDependency
        sounddevice is not installed.
    PlaybackError
        The PortAudio library is missing or cannot be initialised.
    """
    # libjack would otherwise start a JACK server of its own when none runs, taking the sound card
    # from the desktop's sound server; the user's own server (or PipeWire's JACK) is still used.
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        import sounddevice as sd
    except ModuleNotFoundError as e:
        if e.name == "sounddevice":
            raise MissingDependency("sounddevice", feature="Audio playback") from None
        raise
    except OSError as e:  # sounddevice raises OSError("PortAudio library not found")
        raise PlaybackError(_NO_PORTAUDIO.format(detail=e)) from None
    if rescan:
        with _lock:
            if _open_streams == 0:
                try:
                    sd._terminate()
                    sd._initialize()
                except sd.PortAudioError as e:
                    raise PlaybackError(_NO_PORTAUDIO.format(detail=e)) from None
    return sd


@dataclass(frozen=True)
class OutputDevice:
    """One PortAudio output device, as the preferences list it."""

    index: int
    name: str
    host_api: str
    max_channels: int
    default_sample_rate: int
    default_latency_s: float
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host_api})"


def output_devices(*, rescan: bool = False) -> list[OutputDevice]:
    """Every device with at least one output channel; raises PlaybackError without PortAudio."""
    sd = import_sounddevice(rescan=rescan)
    apis = sd.query_hostapis()
    try:
        default = sd.default.device[1]
        default = int(default) if default is not None else -1
    except (TypeError, IndexError, ValueError):
        default = -1
    out = []
    for d in sd.query_devices():
        if d["max_output_channels"] <= 0:
            continue
        out.append(OutputDevice(
            index=int(d["index"]), name=str(d["name"]), host_api=str(apis[d["hostapi"]]["name"]),
            max_channels=int(d["max_output_channels"]),
            default_sample_rate=int(round(d["default_samplerate"])),
            default_latency_s=float(d["default_low_output_latency"]), is_default=int(d["index"]) == default))
    return out


def _resolve_device(sd: Any, device: int | str | None) -> OutputDevice:
    devices = output_devices()
    if not devices:
        apis = ", ".join(f"{a['name']} with no outputs" for a in sd.query_hostapis()) or "no host API"
        raise PlaybackError(_NO_OUTPUT.format(apis=apis))
    if device is None or device == "":
        return next((d for d in devices if d.is_default), devices[0])
    for d in devices:
        if device == d.index or device in (d.name, d.label):
            return d
    names = "; ".join(d.label for d in devices)
    raise PlaybackError(
        f"Audio output device {device!r} is not available (unplugged, or another host API?). "
        f"Available outputs: {names}. Pick one in Preferences ▸ Audio."
    )


class AudioPlayer:
    """Plays a prepared mix through one PortAudio output stream; its position is the device's.

    Parameters
    ----------
    device : int, str or None
        PortAudio device index, name, or :attr:`OutputDevice.label`; None = the default output.
    blocksize : int
        Frames per callback (the buffer size); 0 lets PortAudio pick (lowest latency it can).
    sample_rate : int, optional
        Stream rate in Hz; default the device's own rate (so nothing resamples behind our back).
        Render the mix at :attr:`sample_rate`.
    latency : str or float
        PortAudio's suggested output latency: ``"low"``, ``"high"`` or seconds.

    Raises
    ------
    PlaybackError
        No PortAudio, no output device, an unknown device, or the device refused the stream.
    MissingDependency
        sounddevice is not installed.

    The stream starts at the first :meth:`play` and runs (writing silence while paused) until
    :meth:`close`, so the position stays on one clock. Methods are for one controlling thread
    (the GUI's); the callback runs on PortAudio's thread and shares only plain attributes that are
    swapped whole.
    """

    def __init__(self, *, device: int | str | None = None, blocksize: int = 0,
                 sample_rate: int | None = None, latency: str | float = "low") -> None:
        global _open_streams
        if blocksize < 0:
            raise PlaybackError(f"Audio buffer size {blocksize} is negative; use 0 (automatic) or e.g. 256, 512.")
        sd = import_sounddevice(rescan=True)
        self.device = _resolve_device(sd, device)
        self.channels = min(2, self.device.max_channels)
        rate = int(sample_rate or self.device.default_sample_rate)
        try:
            self._stream = sd.OutputStream(
                samplerate=rate, blocksize=int(blocksize), device=self.device.index, channels=self.channels,
                dtype="float32", latency=latency, callback=self._callback)
        except (sd.PortAudioError, ValueError) as e:
            raise PlaybackError(
                f"The audio device {self.device.label} refused a {self.channels}-channel float32 stream at "
                f"{rate} Hz with buffer size {blocksize or 'auto'} ({e}). Pick another device or buffer "
                "size in Preferences ▸ Audio, or close the program holding the device."
            ) from None
        with _lock:
            _open_streams += 1
        self._closed = False
        self.sample_rate = int(round(self._stream.samplerate))
        self.blocksize = int(blocksize)
        #: What PortAudio reports as the output latency (s); the position already accounts for it.
        self.output_latency_s = float(self._stream.latency)
        # shared with the callback (each swapped whole)
        # (mix (samples, channels) float32 C-order or None, song length in frames or None = run on)
        self._track: tuple[np.ndarray | None, int | None] = (None, None)
        self._playing = False
        self._seek_request: tuple[int, int] = (0, 0)  # (serial, frame): applied at the next block
        self._loop: tuple[int, int] | None = None
        # owned by the callback
        self._frame = 0
        self._seek_seen = 0
        self._ended = False
        self._stamps = np.zeros((_STAMPS, 3), dtype=np.float64)  # (dac time, song frame, advancing)
        self._stamp_count = 0
        # owned by the controlling thread
        self._hold_frame = 0  # the position while paused
        self.xruns = 0

    # -- the mix ---------------------------------------------------------------------------------
    def set_mix(self, mix: np.ndarray | None) -> None:
        """Play ``mix`` (float32 (channels, samples) at :attr:`sample_rate`, song time 0 at sample
        0) from now on, at the current position; None = silence that still advances the clock."""
        if mix is None:
            self._track = (None, None)
            return
        mix = np.asarray(mix, dtype=np.float32)
        if mix.ndim != 2 or mix.shape[0] not in (1, 2):
            raise PlaybackError(f"mix of shape {mix.shape} is not (channels, samples) with 1 or 2 channels")
        if self.channels == 1 and mix.shape[0] == 2:
            mix = mix.mean(axis=0, keepdims=True)
        elif self.channels == 2 and mix.shape[0] == 1:
            mix = np.repeat(mix, 2, axis=0)
        frames = np.ascontiguousarray(mix.T)
        self._track = (frames, frames.shape[0])

    @property
    def duration_s(self) -> float | None:
        length = self._track[1]
        return None if length is None else length / self.sample_rate

    # -- transport -------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        """True from :meth:`play` until :meth:`pause`, or until the song's last sample was heard."""
        if not self._playing:
            return False
        length = self._track[1]
        return not (self._ended and length is not None and self._frame_now() >= length)

    def play(self) -> None:
        """Start (or resume) at the current position. Raises PlaybackError if the stream fails."""
        self._check_open()
        if self._playing:
            return
        self._request_seek(self._hold_frame)
        self._playing = True
        if not self._stream.active:
            try:
                self._stream.start()
            except Exception as e:  # sounddevice.PortAudioError
                self._playing = False
                raise PlaybackError(
                    f"The audio device {self.device.label} could not start ({e}). It may have been "
                    "unplugged or taken by another program; pick a device in Preferences ▸ Audio."
                ) from None

    def pause(self) -> None:
        """Stop at the sample heard now; :meth:`play` resumes from there."""
        if not self._playing:
            return
        frame = self._frame_now()
        self._playing = False
        self._hold_frame = frame
        self._request_seek(frame)

    def seek(self, seconds: float) -> None:
        """Continue from song time ``seconds`` (playing or paused)."""
        if not (seconds == seconds) or seconds < 0:
            raise PlaybackError(f"seek position {seconds!r} must be a number of seconds >= 0")
        frame = int(round(seconds * self.sample_rate))
        self._hold_frame = frame
        self._request_seek(frame)

    def set_loop(self, start_s: float | None, end_s: float | None = None) -> None:
        """Loop song time [start_s, end_s) while playing (once the playhead is inside it or
        before its end); ``set_loop(None)`` ends looping."""
        if start_s is None:
            self._loop = None
            return
        if end_s is None or not (0 <= start_s and start_s + MIN_LOOP_S <= end_s):
            raise PlaybackError(f"loop region {start_s!r}–{end_s!r} s is too short; pick 0 <= start and "
                                f"end at least {MIN_LOOP_S * 1000:.0f} ms after it")
        a, b = int(round(start_s * self.sample_rate)), int(round(end_s * self.sample_rate))
        self._loop = (a, b)

    @property
    def loop(self) -> tuple[float, float] | None:
        lp = self._loop
        return None if lp is None else (lp[0] / self.sample_rate, lp[1] / self.sample_rate)

    def position_s(self) -> float:
        """Song time of the sample reaching the speaker now (seconds)."""
        return self._frame_now() / self.sample_rate

    def _frame_now(self) -> float:
        if not self._playing:
            return float(self._hold_frame)
        now = self._stream.time
        count = self._stamp_count
        if count == 0:
            return float(self._hold_frame)
        oldest = None
        for k in range(count - 1, max(-1, count - _STAMPS - 1), -1):
            dac, frame, advancing = self._stamps[k % _STAMPS].tolist()  # one row, read in one C call
            if dac <= now:
                return frame + advancing * (now - dac) * self.sample_rate
            oldest = frame
        # nothing handed to the device has reached the speaker yet: still the position before
        return float(self._hold_frame if oldest is None else oldest)

    def _request_seek(self, frame: int) -> None:
        self._ended = False
        self._seek_request = (self._seek_request[0] + 1, int(frame))

    # -- lifetime --------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise PlaybackError("this audio player is closed; start playback again")

    def close(self) -> None:
        """Stop and release the device. Idempotent."""
        global _open_streams
        if self._closed:
            return
        self._closed = True
        self._playing = False
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # the device vanished: nothing left to release
            pass
        with _lock:
            _open_streams -= 1

    def __enter__(self) -> AudioPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the audio thread ------------------------------------------------------------------------
    def _stamp(self, dac: float, frame: int, advancing: float) -> None:
        self._stamps[self._stamp_count % _STAMPS] = (dac, frame, advancing)  # one row, one C call
        self._stamp_count += 1

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.xruns += 1
        request = self._seek_request
        if request[0] != self._seek_seen:
            self._seek_seen, self._frame = request
        dac = time_info.outputBufferDacTime or (time_info.currentTime + self.output_latency_s)
        rate = float(self.sample_rate)
        if not self._playing:
            outdata.fill(0.0)
            self._stamp(dac, self._frame, 0.0)
            return
        (mix, length), loop = self._track, self._loop
        frame, pos = self._frame, 0
        while pos < frames:
            n = frames - pos
            if loop is not None and frame < loop[1]:
                n = min(n, loop[1] - frame)
            elif length is not None and frame >= length:  # the song is over: silence from here
                outdata[pos:].fill(0.0)
                self._stamp(dac + pos / rate, length, 0.0)
                self._ended = True
                break
            elif length is not None:
                n = min(n, length - frame)
            self._stamp(dac + pos / rate, frame, 1.0)
            have = 0 if mix is None else max(0, min(n, mix.shape[0] - frame))
            if have:
                outdata[pos:pos + have] = mix[frame:frame + have]
            if have < n:
                outdata[pos + have:pos + n].fill(0.0)
            frame += n
            pos += n
            if loop is not None and frame >= loop[1]:
                frame = loop[0]
        self._frame = frame
