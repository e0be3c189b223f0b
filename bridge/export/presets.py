"""Where the video goes: size/fps presets and the codecs the local FFmpeg (PyAV) build can encode.

Presets set only the frame size and rate; the engines compose the picture for that size (they work
in units of the shorter side, so a portrait or square frame is reframed, never stretched).

Codecs: H.264 and HEVC (quality by CRF or an average bit rate) in MP4/MOV, ProRes 422 (fixed data
rate per profile) in MOV. Each codec lists the FFmpeg encoders that make it, software first;
:func:`pick_encoder` opens them in order and uses the first that works on this machine, unless the
producer asks otherwise (``RenderSettings.encoder``, ``stembridge render --encoder``): "hardware" for
the first GPU / media-engine encoder that opens (NVENC on NVIDIA, VideoToolbox on a Mac, Quick Sync,
AMF, VA-API), or one encoder by its FFmpeg name. The default stays "auto" (software first): the same
project exports the same file on every machine, and x264 at a CRF is what the quality figures are for.

Encode speed (``RenderSettings.encode_speed``, ``stembridge render --encode-speed``): how hard x264 /
x265 work per frame, :data:`ENCODE_SPEED_PRESETS`. The CRF keeps the picture quality about the same;
a faster preset spends more bits on it and leaves more CPU to the renderer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from bridge.errors import RenderError
from bridge.project.schema import DEFAULT_ENCODE_SPEED, ENCODE_SPEEDS, check_encode_speed

__all__ = [
    "CODECS",
    "PRESETS",
    "ExportPreset",
    "VideoCodec",
    "ENCODER_CHOICES",
    "ENCODE_SPEEDS",
    "ENCODE_SPEED_PRESETS",
    "DEFAULT_ENCODE_SPEED",
    "encode_speed_preset",
    "available_codecs",
    "check_encoder_choice",
    "encoders_available",
    "get_codec",
    "is_hardware_encoder",
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
def _open_error(name: str, pix_fmt: str, width: int, height: int, fps: Fraction,
                options: tuple[tuple[str, str], ...] = ()) -> str | None:
    """None when encoder ``name`` opens with these settings; else FFmpeg's reason (e.g. NVENC on a
    GPU without a video encoder, such as an H100/H200: "OpenEncodeSessionEx failed: unsupported
    device")."""
    import av

    try:
        context = av.codec.CodecContext.create(name, "w")
        context.options = dict(options)
        context.width, context.height, context.pix_fmt = width, height, pix_fmt
        context.time_base = 1 / fps
        context.framerate = fps
        context.open()
    except (av.FFmpegError, ValueError) as err:
        return str(err).split("last error log: ")[-1].strip() or type(err).__name__
    return None


def _opens(name: str, pix_fmt: str, width: int, height: int, fps: Fraction,
           options: tuple[tuple[str, str], ...] = ()) -> bool:
    return _open_error(name, pix_fmt, width, height, fps, options) is None


#: What ``--encoder`` takes besides an FFmpeg encoder's name.
ENCODER_CHOICES = ("auto", "hardware")
#: FFmpeg encoder name endings of the hardware (GPU / media engine) encoders.
_HARDWARE_SUFFIXES = ("_nvenc", "_videotoolbox", "_qsv", "_amf", "_vaapi", "_mf", "_v4l2m2m")


#: NVENC's constant-quality scale (``-rc vbr -cq N -b:v 0``) against the codec's CRF: cq = crf + offset.
#: Not measured yet: the only GPU lent so far (an H200) has no video encoder. 0 until
#: benchmarks/encoder_quality.py, run on a GPU with NVENC, prints the offset that matches x264's PSNR.
NVENC_CQ_OFFSET = {"h264_nvenc": 0, "hevc_nvenc": 0}


def constant_quality_options(encoder: str, crf: int, preset: str) -> dict[str, str] | None:
    """FFmpeg options that make ``encoder`` code at constant quality ``crf`` (the codec's CRF scale),
    or None for an encoder that only takes a bit rate here (ProRes, the media-engine encoders whose
    quality scales were not measured: they get a generous bit rate instead).

    x264/x265: ``crf`` and the speed ``preset``. NVENC: variable rate capped by quality alone (``cq``
    with no target rate: the caller sets the context's bit rate to 0), preset p4 (NVENC's middle).
    """
    name = str(encoder)
    if name in ("libx264", "libx265"):
        return {"preset": str(preset), "crf": str(int(crf))}
    if name in NVENC_CQ_OFFSET:
        cq = min(51, max(1, int(crf) + NVENC_CQ_OFFSET[name]))
        return {"preset": "p4", "rc": "vbr", "cq": str(cq)}
    return None


#: The x264 / x265 preset of each encode speed (both encoders name their presets alike). Measured
#: for x264 on a 2-core VM, 150 frames of four shader looks at 1280x720, CRF 20 (issue 13):
#:   draft    ultrafast   8.1 CPU-ms/frame, 5.25 Mb/s at 30 fps, PSNR-Y 55.8 dB
#:   balanced superfast  16.9 CPU-ms/frame, 4.10 Mb/s,            PSNR-Y 57.2 dB
#:   small    veryfast   23.5 CPU-ms/frame, 2.29 Mb/s,            PSNR-Y 54.9 dB
#: On 10 s of the demo's shader export at 720p30 (benchmarks/render_speed.py --encode-speed): x264
#: alone 5.7 / 10.8 / 17.4 CPU-ms a frame, 5.6 / 3.4 / 1.9 Mb/s; the whole frame loop 25 / 29 / 35.
#: x265's own ladder is slower at each name (not measured here). Hardware encoders do not take it:
#: NVENC keeps its middle preset p4 (it codes on the GPU's video engine, so a faster preset would not
#: free the CPU cores the renderer needs, and no GPU lent so far has NVENC to measure one on);
#: VideoToolbox, Quick Sync, AMF, VA-API get a bit rate and no preset; ProRes has none.
ENCODE_SPEED_PRESETS: dict[str, str] = {"draft": "ultrafast", "balanced": "superfast", "small": "veryfast"}
assert set(ENCODE_SPEED_PRESETS) == set(ENCODE_SPEEDS)  # the schema names them, this table maps them


def encode_speed_preset(speed: str) -> str:
    """The x264 / x265 preset for encode ``speed`` ("draft", "balanced", "small"); RenderError naming
    the value and the choices."""
    try:
        return ENCODE_SPEED_PRESETS[check_encode_speed(speed)]
    except ValueError as err:
        raise RenderError(str(err)) from None


def is_hardware_encoder(name: str) -> bool:
    """True for an encoder that runs on a GPU or media engine (h264_nvenc, hevc_videotoolbox, …)."""
    return str(name).endswith(_HARDWARE_SUFFIXES)


def check_encoder_choice(choice: str) -> str:
    """``choice`` normalised ("auto", "hardware" or an encoder some codec here lists); RenderError if not."""
    key = str(choice).strip().lower()
    known = [name for spec in CODECS.values() for name in spec.encoders]
    if key in ENCODER_CHOICES or key in known:
        return key
    raise RenderError(f"encoder {choice!r} is unknown; use auto (software first), hardware (the GPU's), or one "
                      f"of {', '.join(known)}")


def encoders_available(codec: str | VideoCodec, width: int = 64, height: int = 64,
                       fps: Fraction | int = 30) -> list[str]:
    """The encoders of ``codec`` that open on this machine at this size, in the codec's order."""
    spec = codec if isinstance(codec, VideoCodec) else get_codec(codec)
    return [name for name in spec.encoders
            if _encoder_exists(name) and _opens(name, spec.pix_fmt, int(width), int(height), Fraction(fps), spec.options)]


def pick_encoder(codec: str | VideoCodec, width: int, height: int, fps: Fraction, *, prefer: str = "auto") -> str:
    """The encoder of ``codec`` that exports here at this size; RenderError naming what is available.

    ``prefer``: "auto" — the first of the codec's encoders that opens (software first); "hardware" —
    the first hardware one that opens; an FFmpeg encoder name (e.g. "h264_nvenc") — that one.
    """
    spec = codec if isinstance(codec, VideoCodec) else get_codec(codec)
    prefer = check_encoder_choice(prefer)
    if prefer == "auto":
        for name in spec.encoders:
            if _encoder_exists(name) and _opens(name, spec.pix_fmt, int(width), int(height), Fraction(fps),
                                                spec.options):
                return name
        available = available_codecs()
        raise RenderError(
            f"No {spec.label} encoder is available in this FFmpeg build (PyAV {_av_version()}): tried "
            f"{', '.join(spec.encoders)}. Codecs this machine can export: "
            f"{', '.join(CODECS[k].label for k in available) or 'none'}; pick one of those, or install the "
            "PyAV wheel from PyPI (pip install --force-reinstall av), which includes libx264 and libx265.")
    opens = encoders_available(spec, width, height, fps)
    here = (f"{spec.label} encoders that open here at {width}x{height}: {', '.join(opens)}" if opens
            else f"no {spec.label} encoder opens here at {width}x{height}")
    if prefer == "hardware":
        hardware = [name for name in opens if is_hardware_encoder(name)]
        if hardware:
            return hardware[0]
        tried = ", ".join(n for n in spec.encoders if is_hardware_encoder(n)) or "none"
        reasons = "; ".join(f"{n}: {_open_error(n, spec.pix_fmt, int(width), int(height), Fraction(fps), spec.options)}"
                            for n in spec.encoders if is_hardware_encoder(n) and _encoder_exists(n))
        raise RenderError(f"No hardware {spec.label} encoder opens on this machine (tried {tried}: no GPU, "
                          "no driver, a GPU without a video encoder such as an H100/H200, or a size it does "
                          f"not take{'; ' + reasons if reasons else ''}); {here}. Export with --encoder auto.")
    if prefer not in spec.encoders:
        raise RenderError(f"encoder {prefer!r} does not make {spec.label}; its encoders are "
                          f"{', '.join(spec.encoders)} ({here}).")
    if prefer not in opens:
        raise RenderError(f"encoder {prefer!r} does not open on this machine at {width}x{height} (missing from "
                          f"this FFmpeg build, or no GPU / driver for it); {here}. Pick one of those, or "
                          "--encoder auto.")
    return prefer


def available_codecs() -> list[str]:
    """Keys of :data:`CODECS` that have an encoder which opens here (checked at 64×64, 30 fps)."""
    return [key for key, spec in CODECS.items() if encoders_available(spec)]


def _av_version() -> str:
    import av

    return getattr(av, "__version__", "?")
