"""Joining rendered segments: video-only part files put end to end without re-encoding, the
soundtrack encoded once beside them (split out of :mod:`bridge.export.segments`, which plans and
renders the parts; :mod:`bridge.export.cluster` renders them on Ray and joins them here too)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from bridge.errors import RenderError
from bridge.fsutil import PendingFile

_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}


def check_output_path(out_path: str | os.PathLike[str], codec: str = "h264") -> Path:
    from bridge.export.presets import get_codec

    out = Path(out_path)
    spec = get_codec(codec)
    if out.suffix.lower() not in _CONTAINER_FORMATS:
        raise RenderError(f"Output '{out}' has the extension '{out.suffix}', which the writer does not make; "
                          f"name it '{spec.default_suffix}'.")
    if out.suffix.lower() not in spec.suffixes:
        raise RenderError(f"{spec.label} cannot go in a '{out.suffix}' file; name the output "
                          f"'{out.with_suffix(spec.default_suffix).name}'.")
    if not out.parent.is_dir():
        raise RenderError(f"Folder '{out.parent}' for the output '{out.name}' does not exist; create it or "
                          "choose another output path.")
    return out


class _AudioFeed:
    """Encode a soundtrack into an AAC stream in whole frames, as far as the video has got."""

    def __init__(self, container, stream, audio: np.ndarray, sample_rate: int) -> None:
        self.container, self.stream, self.audio, self.rate = container, stream, audio, sample_rate
        self.sent = 0
        self.frame_size = stream.codec_context.frame_size or 1024

    def send(self, until_sample: int, *, final: bool = False) -> None:
        import av

        while True:
            remaining = until_sample - self.sent
            if remaining <= 0 or (remaining < self.frame_size and not final):
                return
            count = min(self.frame_size, remaining)
            chunk = self.audio[:, self.sent:self.sent + count]
            if chunk.shape[1] < count:  # past the end of the soundtrack: silence
                chunk = np.pad(chunk, ((0, 0), (0, count - chunk.shape[1])))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            frame.sample_rate = self.rate
            frame.pts = self.sent
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))
            self.sent += count

    def flush(self) -> None:
        self.container.mux(self.stream.encode(None))


def join_parts(parts: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str], *, fps: Fraction,
               n_frames: int, audio: np.ndarray | None = None, audio_sample_rate: int = 48000,
               audio_bitrate: int | None = None) -> Path:
    """Join video-only part files into ``out_path`` without re-encoding; encode ``audio`` once.

    The parts must share their codec parameters (size, profile, SPS/PPS): they are checked and a
    mismatch is a RenderError. The audio (float (channels, samples) from the first frame) is fitted
    to ``n_frames / fps`` like :class:`bridge.export.video.VideoWriter` does. Written atomically.
    """
    import av

    from bridge.export.video import AAC_SAMPLE_RATES, DEFAULT_AUDIO_BITRATE

    out = check_output_path(out_path)
    fps = Fraction(fps)
    if audio is not None:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] not in (1, 2) or not np.isfinite(audio).all():
            raise RenderError(f"Audio of shape {audio.shape} cannot be muxed; pass finite float (channels, "
                              "samples) with 1 or 2 channels (mix stems with bridge.export.mix_stems first).")
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        if audio_sample_rate not in AAC_SAMPLE_RATES:
            raise RenderError(f"Audio sample rate {audio_sample_rate} Hz is not supported by AAC; use 48000 Hz.")
    pending = PendingFile(out)
    container = None
    try:
        container = av.open(str(pending.tmp), "w", format=_CONTAINER_FORMATS[out.suffix.lower()],
                            options={"movflags": "+faststart"})
        vout = None
        reference = None
        feed = None
        offset_frames = 0
        for index, part in enumerate(parts):
            with av.open(str(part)) as src:
                vin = src.streams.video[0]
                signature = (vin.codec_context.name, vin.codec_context.width, vin.codec_context.height,
                             bytes(vin.codec_context.extradata or b""), vin.time_base)
                if vout is None:
                    reference = signature
                    vout = container.add_stream_from_template(vin)
                    vout.time_base = vin.time_base
                    if vin.codec_tag:  # e.g. HEVC's "hvc1" (Apple players refuse the muxer's "hev1")
                        vout.codec_tag = vin.codec_tag
                    if audio is not None:
                        astream = container.add_stream("aac", rate=audio_sample_rate, layout="stereo")
                        astream.bit_rate = audio_bitrate or DEFAULT_AUDIO_BITRATE
                        astream.time_base = Fraction(1, audio_sample_rate)
                        container.start_encoding()
                        feed = _AudioFeed(container, astream, audio, audio_sample_rate)
                elif signature != reference:
                    raise RenderError(f"Segment {index} ('{part}') was encoded with other codec parameters "
                                      "than the first; delete the work folder and render again.")
                tb = vin.time_base
                shift = Fraction(offset_frames) / fps / tb
                if shift.denominator != 1:
                    raise RenderError(f"Segment {index} starts between two ticks of its time base {tb}; "
                                      "render again with --no-resume.")
                frames = 0
                for packet in src.demux(vin):
                    if packet.dts is None:  # the demuxer's end marker
                        continue
                    packet.pts += int(shift)
                    packet.dts += int(shift)
                    packet.stream = vout
                    container.mux(packet)
                    frames += 1
                    if feed is not None:  # audio up to this packet's decode time: an interleaved mux
                        feed.send(max(0, round(Fraction(packet.dts) * tb * audio_sample_rate)))
                offset_frames += frames
        if offset_frames != n_frames:
            raise RenderError(f"The segments hold {offset_frames} frames, the render needs {n_frames}; "
                              "delete the work folder and render again.")
        if feed is not None:
            feed.send(round(Fraction(n_frames) * audio_sample_rate / fps), final=True)
            feed.flush()
        container.close()
        container = None
        pending.commit()
    except BaseException as err:
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        pending.abort()
        if isinstance(err, av.FFmpegError | OSError):
            raise RenderError(f"Joining the segments into '{out}' failed: {err}") from err
        raise
    return out

