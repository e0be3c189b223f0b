"""Where the video goes: size/fps presets and the codecs the local FFmpeg (PyAV) build can encode.

Presets set only the frame size and rate; the engines compose the picture for that size (they work
in units of the shorter side, so a portrait or square frame is reframed, never stretched).

Codecs: H.264 and HEVC (quality by CRF or an average bit rate) in MP4/MOV, ProRes 422 (fixed data
rate per profile) in MOV. Each codec lists the FFmpeg encoders that make it, software first;
:func:`pick_encoder` opens them in order and uses the first that works on this machine.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from bridge.errors import RenderError

__all__ = [
    "CODECS",
    "PRESETS",
    "ExportPreset",
    "VideoCodec",
    "available_codecs",
    "get_codec",
    "get_preset",
    "pick_encoder",
]


@dataclass(frozen=True)
class ExportPreset:
    name: str
    width: int
    height: int
    fps: str
    label: str


PRESETS: dict[str, ExportPreset] = {p.name: p for p in (
    ExportPreset("1080p30", 1920, 1080, "30", "1080p 30 fps (YouTube, Vimeo)"),
    ExportPreset("1080p60", 1920, 1080, "60", "1080p 60 fps (YouTube, smooth motion)"),
    ExportPreset("4k30", 3840, 2160, "30", "4K 30 fps (YouTube 2160p)"),
    ExportPreset("vertical-1080", 1080, 1920, "30", "Vertical 9:16 1080×1920 (Reels, TikTok, Shorts)"),
    ExportPreset("square-1080", 1080, 1080, "30", "Square 1:1 1080×1080 (Instagram feed)"),
)}


def get_preset(name: str) -> ExportPreset:
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise RenderError(f"export preset {name!r} is unknown; use one of {', '.join(PRESETS)}")
    return PRESETS[key]


@dataclass(frozen=True)
class VideoCodec:
    key: str
    label: str
    #: FFmpeg encoders that make it, tried in order (hardware ones may be listed and fail to open).
    encoders: tuple[str, ...]
    pix_fmt: str
    #: Output extensions it can be muxed into; the first is the default.
    suffixes: tuple[str, ...]
    #: Constant-quality encoders (those take ``crf``); others get a bit rate.
    crf_encoders: tuple[str, ...] = ()
    default_crf: int = 20
    #: False: the data rate is set by the profile (ProRes); CRF and bit rate do not apply.
    has_quality: bool = True
    #: FourCC in MP4/MOV ("hvc1" so Apple players accept HEVC).
    codec_tag: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def default_suffix(self) -> str:
        return self.suffixes[0]


CODECS: dict[str, VideoCodec] = {c.key: c for c in (
    VideoCodec("h264", "H.264", ("libx264", "h264_videotoolbox", "h264_mf", "h264_nvenc", "h264_qsv",
                                 "h264_amf", "h264_vaapi", "h264_v4l2m2m"),
               "yuv420p", (".mp4", ".m4v", ".mov"), crf_encoders=("libx264",), default_crf=20),
    # x265's CRF scale sits about 4–6 above x264's for the same look: 24 ≈ x264 20.
    VideoCodec("hevc", "HEVC (H.265)", ("libx265", "hevc_videotoolbox", "hevc_mf", "hevc_nvenc", "hevc_qsv",
                                        "hevc_amf", "hevc_vaapi"),
               "yuv420p", (".mp4", ".m4v", ".mov"), crf_encoders=("libx265",), default_crf=24, codec_tag="hvc1",
               options=(("x265-params", "log-level=error"),)),
    # profile 2 = ProRes 422 (standard); 10-bit 4:2:2 as ProRes is defined.
    VideoCodec("prores", "ProRes 422", ("prores_ks", "prores_aw", "prores", "prores_videotoolbox"),
               "yuv422p10le", (".mov",), has_quality=False, codec_tag="apcn", options=(("profile", "2"),)),
)}


def get_codec(name: str) -> VideoCodec:
    key = str(name).strip().lower().replace(".", "").replace("-", "")
    key = {"h265": "hevc", "x264": "h264", "x265": "hevc", "prores422": "prores", "avc": "h264"}.get(key, key)
    if key not in CODECS:
        raise RenderError(f"video codec {name!r} is unknown; use one of {', '.join(CODECS)}")
    return CODECS[key]


def _encoder_exists(name: str) -> bool:
    import av

    return name in av.codecs_available


@functools.cache
def _opens(name: str, pix_fmt: str, width: int, height: int, fps: Fraction,
           options: tuple[tuple[str, str], ...] = ()) -> bool:
    import av

    try:
        context = av.codec.CodecContext.create(name, "w")
        context.options = dict(options)
        context.width, context.height, context.pix_fmt = width, height, pix_fmt
        context.time_base = 1 / fps
        context.framerate = fps
        context.open()
    except (av.FFmpegError, ValueError):
        return False
    return True


def pick_encoder(codec: str | VideoCodec, width: int, height: int, fps: Fraction) -> str:
    """The first encoder of ``codec`` that opens here at this size; RenderError naming what is available."""
    spec = codec if isinstance(codec, VideoCodec) else get_codec(codec)
    for name in spec.encoders:
        if _encoder_exists(name) and _opens(name, spec.pix_fmt, int(width), int(height), Fraction(fps), spec.options):
            return name
    available = available_codecs()
    raise RenderError(
        f"No {spec.label} encoder is available in this FFmpeg build (PyAV {_av_version()}): tried "
        f"{', '.join(spec.encoders)}. Codecs this machine can export: "
        f"{', '.join(CODECS[k].label for k in available) or 'none'}; pick one of those, or install the "
        "PyAV wheel from PyPI (pip install --force-reinstall av), which includes libx264 and libx265.")


def available_codecs() -> list[str]:
    """Keys of :data:`CODECS` that have an encoder which opens here (checked at 64×64, 30 fps)."""
    return [key for key, spec in CODECS.items()
            if any(_encoder_exists(n) and _opens(n, spec.pix_fmt, 64, 64, Fraction(30), spec.options) for n in spec.encoders)]


def _av_version() -> str:
    import av

    return getattr(av, "__version__", "?")
