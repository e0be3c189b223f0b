"""The video writer: H.264 / HEVC / ProRes 422 video + AAC audio through PyAV, written atomically.

:class:`VideoWriter` takes RGB frames one at a time and the whole audio track up front; it feeds the
audio to the AAC encoder in step with the video (so the mux is interleaved and memory stays flat),
trims or pads the audio to the video's duration, and only renames its temporary file onto the output
path once everything is flushed. Any exception (``Cancelled``, ``KeyboardInterrupt``…) removes the
temporary file and leaves an existing output untouched.

Colour: frames are converted to limited-range BT.709 YUV (4:2:0; 10-bit 4:2:2 for ProRes) and tagged BT.709 (primaries,
transfer, matrix), which is what players assume for HD video and what sRGB renders map to.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable
from fractions import Fraction
from numbers import Rational
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from bridge.errors import RenderError
from bridge.export.presets import (
    DEFAULT_ENCODE_SPEED,
    ENCODE_SPEED_PRESETS,
    constant_quality_options,
    get_codec,
    pick_encoder,
)
from bridge.export.threads import cpu_threads
from bridge.fsutil import PendingFile
from bridge.jobs import CancelToken, ProgressCallback

#: x264 / x265 preset: the "balanced" encode speed (measured figures at
#: :data:`bridge.export.presets.ENCODE_SPEED_PRESETS`); the encoder must leave CPU to the renderer,
#: so speed wins over file size. Pass preset="veryfast" (encode speed "small") for smaller files.
DEFAULT_PRESET = ENCODE_SPEED_PRESETS[DEFAULT_ENCODE_SPEED]
DEFAULT_CRF = 20
DEFAULT_AUDIO_BITRATE = 192_000
#: Sample rates FFmpeg's native AAC encoder accepts.
AAC_SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
)
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_AVCOL_BT709 = 1  # AVCOL_PRI_BT709 == AVCOL_TRC_BT709 == AVCOL_SPC_BT709 == 1 in FFmpeg
_AVCOL_RANGE_MPEG = 1  # limited ("TV") range, 16–235


def _bt709_matrix() -> np.ndarray:
    """RGB (0–255) -> limited-range Y'CbCr BT.709, as a 3x4 matrix for :func:`cv2.transform`."""
    kr, kb = 0.2126, 0.0722
    kg = 1.0 - kr - kb
    y = [kr, kg, kb]
    cb = [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5]
    cr = [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]
    matrix = np.zeros((3, 4), dtype=np.float32)
    matrix[0, :3] = np.array(y) * 219.0 / 255.0
    matrix[1:, :3] = np.array([cb, cr]) * 224.0 / 255.0
    matrix[:, 3] = (16.0, 128.0, 128.0)
    return matrix


_RGB_TO_YUV709 = _bt709_matrix()


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """Convert an RGB frame to planar BT.709 limited-range YUV 4:2:0.

    Written with OpenCV rather than ``VideoFrame.reformat`` because it measured 1.3 ms vs 7 ms per
    720p frame (swscale), within ±1 code value of swscale's BT.709 output; OpenCV's own
    ``COLOR_RGB2YUV_I420`` is BT.601, the wrong matrix for HD players.

    Parameters
    ----------
    rgb : uint8 array, shape (height, width, 3); height and width even.

    Returns
    -------
    np.ndarray
        uint8, shape (height * 3 // 2, width): the Y plane, then U, then V (each chroma plane is
        (height/2, width/2), stored flat), as ``VideoFrame.from_ndarray(format="yuv420p")`` wants.
    """
    height, width = rgb.shape[:2]
    yuv444 = cv2.transform(rgb, _RGB_TO_YUV709)  # saturating uint8 output
    # Chroma: average each 2x2 block (what swscale's default does for 4:2:0, centred siting).
    chroma = cv2.resize(yuv444, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    out = np.empty(height * width * 3 // 2, dtype=np.uint8)
    luma_size, chroma_size = height * width, (height // 2) * (width // 2)
    out[:luma_size].reshape(height, width)[:] = yuv444[..., 0]
    out[luma_size : luma_size + chroma_size].reshape(height // 2, width // 2)[:] = chroma[..., 1]
    out[luma_size + chroma_size :].reshape(height // 2, width // 2)[:] = chroma[..., 2]
    return out.reshape(height * 3 // 2, width)


def _as_fraction(fps: Fraction | int | float) -> Fraction:
    if isinstance(fps, Rational):
        rate = Fraction(fps.numerator, fps.denominator)
    elif isinstance(fps, float) and math.isfinite(fps):
        rate = Fraction(fps).limit_denominator(1_000_000)
    else:
        raise RenderError(
            f"fps {fps!r} is not a number; pass a Fraction, e.g. Fraction(30000, 1001)."
        )
    if not 0 < rate <= 240:
        raise RenderError(f"fps {fps} is out of range; use a frame rate between 1 and 240.")
    return rate


class VideoWriter:
    """Write an MP4 (H.264 + AAC) frame by frame; a context manager that writes atomically.

    Parameters
    ----------
    path : path-like
        Output file (``.mp4``, ``.m4v`` or ``.mov``). Its folder must exist. Nothing appears at
        ``path`` until the writer finishes; an existing file there is replaced only then.
    width, height : int
        Frame size in pixels; both even (4:2:0 chroma halves them).
    fps : Fraction
        Exact frame rate, e.g. ``Fraction(30000, 1001)``; frame ``k`` is shown at ``k / fps`` s.
    audio : float array, shape (channels, samples), optional
        The whole soundtrack at ``audio_sample_rate`` (1 or 2 channels; mono is copied to both).
        It is trimmed or zero-padded to the video's duration, ``n_frames / fps``.
    audio_sample_rate : int
        In Hz; one of :data:`AAC_SAMPLE_RATES`.
    codec : str
        "h264" (default), "hevc" or "prores" (see :data:`bridge.export.presets.CODECS`); the first
        encoder of it that opens here is used (RenderError naming the available codecs otherwise).
        ProRes needs a ``.mov`` output.
    crf, preset : int, str
        Constant quality (lower = better; x264: 18 visually lossless, 23 its default; x265's scale
        sits ~4 higher) and the x264/x265 speed preset. ``crf=None``: the codec's default.
    bitrate : int, optional
        Average video bit rate in bits per second instead of CRF (H.264 / HEVC; not ProRes).
    audio_bitrate : int
        AAC bit rate in bits per second.

    Examples
    --------
    >>> with VideoWriter("out.mp4", width=1280, height=720, fps=Fraction(30), audio=mix) as writer:
    ...     for frame in frames:
    ...         writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: Fraction | int,
        audio: np.ndarray | None = None,
        audio_sample_rate: int = 48000,
        crf: int | None = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        audio_bitrate: int = DEFAULT_AUDIO_BITRATE,
        codec: str = "h264",
        bitrate: int | None = None,
        encoder: str = "auto",
    ) -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = _as_fraction(fps)
        self.audio_sample_rate = int(audio_sample_rate)
        self.frames_written = 0
        self.codec = get_codec(codec)
        crf = self.codec.default_crf if crf is None else int(crf)
        self._check_options(crf)
        if bitrate is not None and not self.codec.has_quality:
            raise RenderError(f"{self.codec.label} has a fixed data rate (set by its profile); export "
                              "it without a bit rate, or pick H.264 / HEVC for a bit rate.")
        if bitrate is not None and not 100_000 <= int(bitrate) <= 2_000_000_000:
            raise RenderError(f"bit rate {bitrate} b/s is out of range; use 100 kb/s to 2 Gb/s "
                              "(e.g. 8000000 for 8 Mb/s).")
        self._audio = self._checked_audio(audio)
        self._audio_samples_sent = 0
        self._closed = False

        suffix = self.path.suffix.lower()
        if suffix not in _CONTAINER_FORMATS:
            raise RenderError(
                f"Output '{self.path}' has the extension '{suffix}', which the writer does not "
                f"make; name it '{self.codec.default_suffix}'."
            )
        if suffix not in self.codec.suffixes:
            raise RenderError(
                f"{self.codec.label} cannot go in a '{suffix}' file; name the output "
                f"'{self.path.with_suffix(self.codec.default_suffix).name}'."
            )
        if not self.path.parent.is_dir():
            raise RenderError(
                f"Folder '{self.path.parent}' for the output '{self.path.name}' does not exist; "
                "create it or choose another output path."
            )
        encoder = pick_encoder(self.codec, self.width, self.height, self.fps, prefer=encoder)
        self.encoder = encoder
        self._pending = PendingFile(self.path)
        self._temp_path = self._pending.tmp
        try:
            self._container = av.open(
                str(self._temp_path),
                "w",
                format=_CONTAINER_FORMATS[suffix],
                # Move the index (moov) to the front when closing so the file plays while loading.
                options={"movflags": "+faststart"},
            )
        except (av.FFmpegError, OSError) as err:
            raise RenderError(
                f"Cannot create '{self._temp_path}' next to the output: {err}. Check that the "
                "folder is writable and the disk is not full."
            ) from err
        try:
            self._open_streams(encoder, crf=crf, preset=preset, audio_bitrate=audio_bitrate,
                               bitrate=None if bitrate is None else int(bitrate))
        except BaseException:
            self._abort()
            raise

    # -- set-up ---------------------------------------------------------------------------------

    def _check_options(self, crf: int) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise RenderError(
                f"Frame size {self.width}x{self.height} is not allowed: 4:2:0 video needs positive "
                f"even sizes; use {max(2, self.width - self.width % 2)}x"
                f"{max(2, self.height - self.height % 2)} (round down to even numbers)."
            )
        if not 0 <= crf <= 51:
            raise RenderError(f"crf {crf} is out of range; use 0–51 (18 = visually lossless).")
        if self.audio_sample_rate not in AAC_SAMPLE_RATES:
            raise RenderError(
                f"Audio sample rate {self.audio_sample_rate} Hz is not supported by AAC; resample "
                "the mix to 48000 Hz (load the stems with load_audio(..., sample_rate=48000))."
            )

    def _checked_audio(self, audio: np.ndarray | None) -> np.ndarray | None:
        if audio is None:
            return None
        audio = np.asarray(audio)
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise RenderError(
                f"Audio of shape {audio.shape} cannot be muxed; pass float (channels, samples) with "
                "1 or 2 channels (mix stems with bridge.export.mix_stems first)."
            )
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if not np.isfinite(audio).all():
            raise RenderError(
                "The audio contains NaN or infinite samples; fix the mix before export."
            )
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        return audio

    def _open_streams(self, encoder: str, *, crf: int, preset: str, audio_bitrate: int,
                      bitrate: int | None) -> None:
        spec = self.codec
        options = dict(spec.options)
        quality = constant_quality_options(encoder, crf, preset) if spec.has_quality else None
        constant_quality = quality is not None and bitrate is None
        if constant_quality:
            options.update(quality)
        elif encoder in spec.crf_encoders:
            options["preset"] = preset
            if bitrate is not None:  # keep the rate near the average (VBV), as platforms expect
                options["maxrate"], options["bufsize"] = str(int(bitrate * 1.5)), str(int(bitrate * 2))
        video = self._container.add_stream(encoder, rate=self.fps, options=options)
        video.width, video.height, video.pix_fmt = self.width, self.height, spec.pix_fmt
        if spec.codec_tag:
            video.codec_tag = spec.codec_tag
        # Time base 1/fps: frame k has pts k, so the frame rate stays an exact rational.
        video.time_base = 1 / self.fps
        video.codec_context.time_base = 1 / self.fps
        video.codec_context.thread_count = cpu_threads()  # 0: auto, one per core; else the render's budget
        context = video.codec_context
        context.color_primaries = context.color_trc = context.colorspace = _AVCOL_BT709
        context.color_range = _AVCOL_RANGE_MPEG
        if bitrate is not None:
            context.bit_rate = bitrate
        elif constant_quality:
            context.bit_rate = 0  # FFmpeg's default target (200 kb/s) would cap NVENC's cq mode
        elif spec.has_quality:
            # encoders without a constant-quality mode here (see presets): a generous bit rate
            context.bit_rate = int(0.15 * self.width * self.height * float(self.fps))
        self._video = video
        self._audio_stream = None
        if self._audio is not None:
            audio_stream = self._container.add_stream(
                "aac", rate=self.audio_sample_rate, layout="stereo"
            )
            audio_stream.bit_rate = audio_bitrate
            audio_stream.time_base = Fraction(1, self.audio_sample_rate)
            self._audio_stream = audio_stream
        self._container.start_encoding()  # opens the encoders, so frame_size is known
        self._audio_frame_size = (
            (self._audio_stream.codec_context.frame_size or 1024) if self._audio_stream else 0
        )

    # -- writing --------------------------------------------------------------------------------

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame: RGB, or (for a yuv420p codec) the planes of a yuv420p frame already
        converted (e.g. by the shader engine on the GPU: :meth:`ShaderEngine.render_yuv420p`).

        Parameters
        ----------
        frame : uint8 array, shape (height, width, 3) (RGB), or (height * 3 // 2, width) (the Y
            plane, then U, then V, BT.709 limited range: what :func:`rgb_to_yuv420p` returns)
        """
        if self._closed:
            raise RenderError(f"VideoWriter for '{self.path}' is closed; open a new one to write.")
        planar = (isinstance(frame, np.ndarray) and frame.dtype == np.uint8
                  and frame.shape == (self.height * 3 // 2, self.width))
        if planar and self.codec.pix_fmt != "yuv420p":
            raise RenderError(
                f"Frame {self.frames_written} is yuv420p planes, but {self.codec.label} is encoded from "
                f"{self.codec.pix_fmt}; pass RGB uint8 of shape ({self.height}, {self.width}, 3).")
        if not planar and (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.shape != (self.height, self.width, 3)
        ):
            got = (
                f"{frame.dtype} array of shape {frame.shape}"
                if isinstance(frame, np.ndarray)
                else type(frame).__name__
            )
            raise RenderError(
                f"Frame {self.frames_written} is a {got}; the writer needs RGB uint8 of shape "
                f"({self.height}, {self.width}, 3) (convert floats with "
                "(np.clip(x, 0, 1) * 255).astype(np.uint8) and drop any alpha channel)."
            )
        if planar:
            video_frame = av.VideoFrame.from_ndarray(frame, format="yuv420p")
        elif self.codec.pix_fmt == "yuv420p":
            video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
        else:  # e.g. ProRes' 10-bit 4:2:2: swscale, BT.709 limited range as for 4:2:0
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format=self.codec.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._video.codec_context.time_base
        try:
            self._container.mux(self._video.encode(video_frame))
            self.frames_written += 1
            # Audio up to the end of this frame, in whole AAC frames; the rest waits for the next.
            self._send_audio(self._audio_samples_at(self.frames_written), final=False)
        except av.FFmpegError as err:
            raise RenderError(
                f"Encoding frame {self.frames_written} of '{self.path}' failed: {err}"
            ) from err

    def _audio_samples_at(self, n_frames: int) -> int:
        """Audio samples covering the first ``n_frames`` video frames (the A/V duration match)."""
        return round(Fraction(n_frames) * self.audio_sample_rate / self.fps)

    def _send_audio(self, until_sample: int, *, final: bool) -> None:
        if self._audio_stream is None or self._audio is None:
            return
        frame_size = self._audio_frame_size
        while True:
            remaining = until_sample - self._audio_samples_sent
            if remaining <= 0 or (remaining < frame_size and not final):
                return
            count = min(frame_size, remaining)
            start = self._audio_samples_sent
            chunk = self._audio[:, start : start + count]
            if chunk.shape[1] < count:  # past the end of the soundtrack: pad with silence
                chunk = np.pad(chunk, ((0, 0), (0, count - chunk.shape[1])))
            audio_frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="stereo"
            )
            audio_frame.sample_rate = self.audio_sample_rate
            audio_frame.pts = start
            audio_frame.time_base = Fraction(1, self.audio_sample_rate)
            self._container.mux(self._audio_stream.encode(audio_frame))
            self._audio_samples_sent += count

    # -- finishing ------------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it onto ``path``.

        Returns
        -------
        Path
            The output path.
        """
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise RenderError(
                    f"No frames were written to '{self.path}'; an empty video cannot be saved."
                )
            # AAC adds its priming delay itself and the MP4 edit list hides it, so sending exactly
            # n_frames/fps worth of samples makes the audio end with the video.
            self._send_audio(self._audio_samples_at(self.frames_written), final=True)
            self._container.mux(self._video.encode(None))
            if self._audio_stream is not None:
                self._container.mux(self._audio_stream.encode(None))
            self._container.close()
            self._closed = True
            self._pending.commit()
        except BaseException as err:
            self._abort()
            if isinstance(err, av.FFmpegError | OSError):
                raise RenderError(f"Finishing '{self.path}' failed: {err}") from err
            raise
        return self.path

    def abort(self) -> None:
        """Stop without output: remove the temporary file; an existing file at ``path`` stays."""
        self._abort()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            # Unlink before closing (POSIX allows it): the +faststart trailer then fails at once
            # instead of rewriting a file that is about to be deleted anyway.
            with contextlib.suppress(OSError):
                self._temp_path.unlink()
            with contextlib.suppress(Exception):
                self._container.close()
        self._pending.abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    *,
    n_frames: int,
    width: int,
    height: int,
    fps: Fraction | int,
    audio: np.ndarray | None = None,
    audio_sample_rate: int = 48000,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    **encoder_opts: object,
) -> Path:
    """Encode ``n_frames`` frames (and the audio) to ``path``; nothing is left there on failure.

    Parameters
    ----------
    frames : iterable of uint8 arrays, shape (height, width, 3)
        Consumed lazily; iteration stops after ``n_frames`` (later items are never requested).
    n_frames : int
        Number of frames to write; the audio is fitted to ``n_frames / fps`` seconds.
    progress : callable, optional
        Called as ``progress(done, n_frames, "encoding")`` after every frame.
    cancel : CancelToken, optional
        Checked before every frame; cancelling raises :class:`~bridge.errors.Cancelled` and
        removes the partial file.
    **encoder_opts
        ``codec``, ``crf``, ``bitrate``, ``preset``, ``audio_bitrate``, ``encoder`` for :class:`VideoWriter`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    RenderError
        Bad sizes, frames or audio, fewer frames than ``n_frames``, or an encoder failure.
    Cancelled
        ``cancel`` was cancelled.
    """
    if n_frames <= 0:
        raise RenderError(f"n_frames is {n_frames}; a video needs at least one frame.")
    with VideoWriter(
        path,
        width=width,
        height=height,
        fps=fps,
        audio=audio,
        audio_sample_rate=audio_sample_rate,
        **encoder_opts,  # type: ignore[arg-type]
    ) as writer:
        iterator = iter(frames)
        for index in range(n_frames):
            if cancel is not None:
                cancel.raise_if_cancelled("the video export")
            frame = next(iterator, None)
            if frame is None:
                raise RenderError(
                    f"The frame source ended after {index} of {n_frames} frames; nothing was saved "
                    f"to '{path}'. Check the render's frame count."
                )
            writer.write(frame)
            if progress is not None:
                progress(index + 1, n_frames, "encoding")
    return Path(path)
