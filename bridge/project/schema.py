"""The project file schema (``stembridge.json``), validated with pydantic.

Versioned: ``schema_version`` is checked on load (older versions are migrated in
:mod:`bridge.project.store`). Paths to stems are stored relative to the project file, POSIX style.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from bridge.vocab import (
    BUILTIN_EFFECTS,
    PARAMETER_NAMES,
    PLUGIN_BUNDLE_SUFFIXES,
    is_shader_target,
    shader_input_name,
)

SCHEMA_VERSION = 1
PROJECT_FILENAME = "stembridge.json"

#: Roles stems can have. Any other non-empty name is allowed too (a user-defined role).
STANDARD_ROLES = ("drums", "bass", "vocals", "lead", "synth", "keys", "guitar", "piano", "fx", "other")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_fps(value: object) -> Fraction:
    """Parse a frame rate: 30, 29.97, "30000/1001", "24" → an exact Fraction.

    29.97 / 23.976 / 59.94 are taken as the NTSC rates (30000/1001 …), as every NLE does.
    Raises ValueError with the value and the accepted forms.
    """
    ntsc = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 59.94: Fraction(60000, 1001)}
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
            raise TypeError
        if isinstance(value, str) and "/" in value:
            fps = Fraction(value.strip())
        else:
            number = float(value)
            fps = ntsc.get(round(number, 3)) or Fraction(str(number)).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(
            f"fps {value!r} is not a frame rate; use a number or an exact ratio such as 30, 25 or '30000/1001'"
        ) from None
    if not (1 <= fps <= 240):
        raise ValueError(f"fps {value!r} is out of range; use a frame rate between 1 and 240")
    return fps


#: What a plugin parameter may be set to: a number, a switch, or one of its named values ("Zero").
ParamValue = float | bool | str


class FxSlot(_Model):
    """One effect in a chain (a stem's or the master's): a pedalboard built-in or a hosted plugin.

    plugin: a built-in's class name (``LowpassFilter``, ``Compressor`` … see
    :data:`bridge.plugins.builtins.BUILTIN_EFFECTS`) or the path of a VST3 / Audio Unit bundle.
    name: the plugin's name inside the bundle (a bundle can hold several); also what is reported
    when the plugin is missing on this machine.
    raw_state: the hosted plugin's full state (``raw_state`` bytes) in base64; restored before
    ``parameters``. A missing plugin is bypassed when the chain runs, never removed from the project.
    """

    plugin: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1)
    bypass: bool = False
    mix: float = Field(default=1.0, ge=0, le=1, description="wet/dry: 1 = only the effect, 0 = dry")
    raw_state: str | None = Field(default=None, description="plugin state, base64")
    parameters: dict[str, ParamValue] = Field(default_factory=dict)

    @field_validator("raw_state")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        import base64
        import binascii

        if v is None:
            return None
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("raw_state is not base64; remove it (the plugin then starts from its "
                             "defaults plus 'parameters') or restore the project from a backup") from None
        return v

    @field_validator("parameters")
    @classmethod
    def _finite(cls, v: dict[str, ParamValue]) -> dict[str, ParamValue]:
        import math

        for key, value in v.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"parameter {key!r} = {value!r} is not a finite number")
        return v

    @property
    def is_builtin(self) -> bool:
        return self.plugin in BUILTIN_EFFECTS

    @property
    def label(self) -> str:
        """How the slot is named to the user: the plugin's name, else the file's or class's."""
        if self.name:
            return self.name
        return self.plugin if self.is_builtin else PurePath(self.plugin.replace("\\", "/")).stem

    @field_validator("plugin")
    @classmethod
    def _builtin_or_bundle(cls, v: str) -> str:
        v = v.strip()
        if v not in BUILTIN_EFFECTS and not v.rstrip("/\\").lower().endswith(PLUGIN_BUNDLE_SUFFIXES):
            raise ValueError(
                f"plugin {v!r} is neither a pedalboard built-in ({', '.join(BUILTIN_EFFECTS)}) nor the "
                f"path of a plugin bundle ({' or '.join(PLUGIN_BUNDLE_SUFFIXES)}); check the spelling")
        return v


class StemSpec(_Model):
    name: str = Field(min_length=1, description="unique display name, e.g. 'Drums'")
    path: str = Field(min_length=1, description="audio file, relative to the project folder (POSIX)")
    role: str = Field(default="other", min_length=1)
    offset_seconds: float = Field(default=0.0, ge=-3600, le=3600,
                                  description="where the file starts in song time (s)")
    gain_db: float = Field(default=0.0, ge=-96, le=24)
    muted: bool = False
    fx: list[FxSlot] = Field(default_factory=list, description="effects before analysis and export, in order")
    external: bool = Field(default=False, description=(
        "the user chose this file outside the project folder and the stems folder (Add stem, or by "
        "hand); a path that leaves both folders without it is refused on load"))

    @field_validator("role")
    @classmethod
    def _role_lower(cls, v: str) -> str:
        v = v.strip().lower()
        if not v or "." in v:
            raise ValueError(f"role {v!r} must be a non-empty word without '.', e.g. 'drums' or 'pads'")
        return v


#: How a section's picture enters (Section.transition).
SectionTransition = Literal["cut", "crossfade", "melt"]
SECTION_TRANSITIONS: tuple[str, ...] = ("cut", "crossfade", "melt")


def check_section_look(look: str | None) -> str | None:
    """A section's look: None (chosen from the music), an .fs path or a look's name.

    Only the form is checked here: whether a name is installed depends on the machine (a look the
    producer added may be missing on another one), so that is checked where a look is chosen (the
    app, ``stembridge sections set``: :func:`bridge.visuals.shader_looks.check_look_name`) and when a
    render compiles it; a project naming a missing look still opens."""
    if look is None:
        return None
    name = look.strip()
    if not name:
        raise ValueError("a section's look must not be empty; leave it out (null) to have it chosen from the music")
    return name


class Section(_Model):
    name: str = ""
    start: float = Field(ge=0)
    end: float | None = Field(default=None, description="None = until the next section / song end")
    unit: Literal["seconds", "beats"] = "seconds"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = Field(default=0, ge=0, lt=2**32)
    style: str = ""
    transition_beats: float = Field(default=4.0, ge=0, le=64)
    #: shader engine: this section's look (a name from `stembridge looks list` or an ISF .fs path);
    #: None = chosen from the music (bridge.visuals.character.auto_section_looks)
    look: str | None = Field(default=None, min_length=1)
    #: how the picture enters this section from the one before: "cut" on the section start (put it
    #: on a downbeat), "crossfade" of the two looks over transition_beats, or "melt" (the old
    #: picture drips away in feedback, revealing the new look, over transition_beats)
    transition: SectionTransition = "crossfade"

    @field_validator("look")
    @classmethod
    def _known_look(cls, v: str | None) -> str | None:
        return check_section_look(v)

    @model_validator(mode="after")
    def _end_after_start(self) -> Section:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"section end {self.end} must be after its start {self.start}")
        return self


CurveName = Literal["linear", "exp", "smoothstep"]


class Mapping(_Model):
    """``source`` (stem.feature or an oscillator) → ``target`` visual parameter."""

    source: str = Field(description="'drums.onset', 'bass.low', 'other.chroma', 'beat.sin', 'bar.saw'…")
    target: str
    amount: float = Field(default=1.0, ge=-100, le=100)
    offset: float = Field(default=0.0, ge=-100, le=100)
    curve: CurveName = "linear"
    attack_ms: float = Field(default=5.0, ge=0, le=10000)
    release_ms: float = Field(default=150.0, ge=0, le=10000)
    clamp: tuple[float, float] | None = None
    enabled: bool = True

    @field_validator("source")
    @classmethod
    def _source_form(cls, v: str) -> str:
        parts = v.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ValueError(
                f"mapping source {v!r} must look like 'stem.feature' (e.g. 'drums.onset', 'bass.low') "
                "or an oscillator such as 'beat.sin'"
            )
        return v.strip()

    @field_validator("target")
    @classmethod
    def _known_target(cls, v: str) -> str:
        v = v.strip()
        if is_shader_target(v):
            shader_input_name(v)
            return v
        if v not in PARAMETER_NAMES:
            raise ValueError(f"mapping target {v!r} is not a visual parameter; use one of {', '.join(PARAMETER_NAMES)}, "
                             "or 'shader:NAME' for an input of the shader look")
        return v

    @field_validator("clamp")
    @classmethod
    def _clamp_order(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"clamp {list(v)} must be [min, max] with min <= max")
        return v


#: How hard the software encoder works per frame (RenderSettings.encode_speed): "draft" is fastest
#: and makes the biggest file, "small" the smallest and slowest; "balanced" is the export's default.
#: The x264 / x265 preset each one means is in bridge.export.presets.ENCODE_SPEED_PRESETS.
EncodeSpeed = Literal["draft", "balanced", "small"]
ENCODE_SPEEDS: tuple[str, ...] = ("draft", "balanced", "small")
DEFAULT_ENCODE_SPEED = "balanced"


def check_encode_speed(value: object) -> str:
    """``value`` as an encode speed ("draft", "balanced", "small"; case and spaces ignored);
    ValueError naming the value and the choices."""
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in ENCODE_SPEEDS:
        raise ValueError(f"encode speed {value!r} is unknown; use draft (fastest, biggest file), balanced "
                         "(the default) or small (smallest file, slowest)")
    return key


class RenderSettings(_Model):
    width: int = Field(default=1280, ge=16, le=7680)
    height: int = Field(default=720, ge=16, le=4320)
    fps: Annotated[str, Field(description="exact rational, e.g. '30' or '30000/1001'")] = "30"
    sample_rate: int = Field(default=48000, ge=8000, le=192000, description="audio rate of the export")
    video_codec: Literal["h264", "hevc", "prores"] = Field(
        default="h264", description="h264 / hevc (MP4 or MOV) or prores (ProRes 422, MOV); see bridge.export.presets")
    crf: int | None = Field(default=None, ge=0, le=51, description=(
        "constant quality for h264/hevc (lower = better; x264: 18 ≈ visually lossless, 23 = its default); "
        "None: the codec's default (H.264 20, HEVC 24)"))
    video_bitrate: int | None = Field(default=None, ge=100_000, le=2_000_000_000, description=(
        "average video bit rate in b/s instead of crf (h264/hevc only)"))
    encoder: str = Field(default="auto", description=(
        "auto (software first: the same file on every machine), hardware (the GPU's: NVENC, VideoToolbox, "
        "Quick Sync, AMF, VA-API) or an FFmpeg encoder name such as h264_nvenc; see bridge.export.presets"))
    encode_speed: EncodeSpeed = Field(default=DEFAULT_ENCODE_SPEED, description=(
        "how hard the software encoder (x264 / x265) works: draft (fastest, biggest file: drafts), balanced "
        "(the default) or small (smallest file, slowest); the picture quality is set by crf either way. "
        "Hardware encoders and ProRes ignore it; see bridge.export.presets.ENCODE_SPEED_PRESETS"))

    @field_validator("fps", mode="before")
    @classmethod
    def _fps(cls, v: object) -> str:
        return str(parse_fps(v))

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"{v} is odd; H.264 (yuv420p) needs even frame sizes, use {v + 1}")
        return v

    @field_validator("video_codec", mode="before")
    @classmethod
    def _codec_alias(cls, v: object) -> object:
        if isinstance(v, str):
            key = v.strip().lower().replace(".", "").replace("-", "")
            return {"h265": "hevc", "prores422": "prores", "avc": "h264"}.get(key, key)
        return v

    @model_serializer(mode="wrap")
    def _without_default_encoder(self, handler):
        # "auto" / "balanced" are not written: a project saved without a choice still opens in earlier
        # versions (extra="forbid" there) and its file stays as it was
        data = handler(self)
        if isinstance(data, dict):
            if data.get("encoder") == "auto":
                data.pop("encoder")
            if data.get("encode_speed") == DEFAULT_ENCODE_SPEED:
                data.pop("encode_speed")
        return data

    @field_validator("encode_speed", mode="before")
    @classmethod
    def _encode_speed(cls, v: object) -> object:
        return check_encode_speed(v)

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder(cls, v: object) -> object:
        # the name's form only: which encoders exist is the export's to say (presets.pick_encoder)
        if isinstance(v, str):
            key = v.strip().lower()
            if not key or not all(c.isalnum() or c == "_" for c in key):
                raise ValueError(f"encoder {v!r} is not an encoder name; use auto, hardware or e.g. h264_nvenc")
            return key
        return v

    @model_validator(mode="after")
    def _quality_fits_codec(self) -> RenderSettings:
        if self.video_codec == "prores" and self.video_bitrate is not None:
            raise ValueError("ProRes 422 has a fixed data rate (set by its profile); remove video_bitrate "
                             "or use h264 / hevc")
        return self

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)


class EngineSettings(_Model):
    name: Literal["procedural", "shader", "lcm"] = "procedural"
    #: shader engine: a look's name (`stembridge looks list`) or a path to an ISF .fs file
    look: str | None = Field(default=None, min_length=1)
    #: shader engine: the look's IMAGE inputs (name → picture file, e.g. cover art) and which stem
    #: each audio / audioFFT input shows (name → stem name; "mix" when not set)
    images: dict[str, str] = Field(default_factory=dict)
    audio_inputs: dict[str, str] = Field(default_factory=dict)
    model: str | None = Field(default=None, description="Hugging Face id or local folder (lcm)")
    steps: int = Field(default=4, ge=1, le=50)
    preview_steps: int = Field(default=1, ge=1, le=50)
    base_strength: float = Field(default=0.35, ge=0, le=1)
    #: None: the model family's recommended guidance (LCM 8, LCM-LoRA 1, sd-turbo 0); a number only
    #: when the producer sets one (saving the project must not turn a default into a choice).
    guidance_scale: float | None = Field(default=None, ge=0, le=20)
    keyframe_every_beats: float = Field(default=1.0, gt=0, le=64)
    seed: int = Field(default=0, ge=0, lt=2**32)


class TempoSettings(_Model):
    """Where the beat grid comes from: detected from audio, a constant tempo, or a MIDI tempo map."""

    source: Literal["detect", "constant", "midi_file"] = "detect"
    tempo_bpm: float | None = Field(default=None, gt=20, lt=400)
    beats_per_bar: int | None = Field(default=None, ge=1, le=16)
    first_downbeat_seconds: float = Field(default=0.0, ge=0)
    midi_file: str | None = None
    midi_file_external: bool = Field(default=False, description=(
        "true when the user chose a tempo-map MIDI file outside the project and stems folders; "
        "such a path without it is refused on load, as for stems"))

    @model_validator(mode="after")
    def _complete(self) -> TempoSettings:
        if self.source == "constant" and self.tempo_bpm is None:
            raise ValueError("tempo source 'constant' needs tempo_bpm (e.g. 124)")
        if self.source == "midi_file" and not self.midi_file:
            raise ValueError("tempo source 'midi_file' needs midi_file (a path to the DAW's exported .mid)")
        return self


#: Beat units a time signature may have (its denominator).
METER_BEAT_UNITS = (1, 2, 4, 8, 16, 32)


def parse_meter(value: object) -> tuple[int, int]:
    """A time signature "4/4", "3/4", "6/8", "12/8" → (numerator, beat unit); ValueError with the fix."""
    fix = "give it as BEATS/UNIT, e.g. 4/4, 3/4, 6/8 or 12/8"
    try:
        num_text, unit_text = str(value).strip().split("/")
        numerator, unit = int(num_text), int(unit_text)
    except ValueError:
        raise ValueError(f"meter {value!r} is not a time signature; {fix}") from None
    if unit not in METER_BEAT_UNITS:
        raise ValueError(f"meter {value!r} has beat unit {unit}; the unit (after '/') must be one of "
                         f"{', '.join(map(str, METER_BEAT_UNITS))}: {fix}")
    if not 1 <= numerator <= 32:
        raise ValueError(f"meter {value!r} has {numerator} beats per bar; use 1 to 32: {fix}")
    return numerator, unit


def meter_beats_per_bar(meter: str) -> int:
    """Counted beats per bar: the numerator, except compound meters (6/8, 9/8, 12/8 …: a numerator
    that is a multiple of 3 above 3, over 8 or 16) are counted in dotted beats of three units —
    6/8 has 2 beats per bar, 12/8 has 4 — as players count them and as beat annotations mark them.
    The tempo of a compound meter is in those dotted beats per minute."""
    numerator, unit = parse_meter(meter)
    if unit >= 8 and numerator > 3 and numerator % 3 == 0:
        return numerator // 3
    return numerator


class RhythmCorrection(_Model):
    """The producer's corrections of the detected rhythm (``stembridge analyze --tempo/--meter/
    --downbeat/--double-tempo/--half-tempo``, the app's tempo panel). All optional: an empty
    correction changes nothing. Used when ``tempo.source`` is "detect"; only the song-level beat grid
    and sections are re-analysed when it changes (per-stem features stay cached).

    tempo_bpm: the song's tempo (the tracker then only places the beats and downbeats).
    tempo_factor: ×2 / ÷2 applied to ``tempo_bpm``, or to the detected tempo when that is not set.
    meter: time signature, e.g. "4/4", "3/4", "6/8", "12/8" (compound: counted in dotted beats).
    first_downbeat_seconds: where a bar starts (song seconds); the grid's bars are counted from it.
    beat_model: track with the learned Beat This! model (bridge.analysis.learned_beats) instead.
    """

    tempo_bpm: float | None = Field(default=None, gt=20, lt=400)
    tempo_factor: float = Field(default=1.0, ge=0.125, le=8)
    meter: str | None = None
    first_downbeat_seconds: float | None = Field(default=None, ge=0, le=86400)
    beat_model: str | None = Field(default=None, min_length=1, description=(
        "learned beat tracker checkpoint (Beat This! name such as 'final0', or a .ckpt path) instead of "
        "the DSP tracker; needs stembridge[beatthis]"))

    @field_validator("meter")
    @classmethod
    def _meter(cls, v: str | None) -> str | None:
        if v is None:
            return None
        numerator, unit = parse_meter(v)
        return f"{numerator}/{unit}"

    @field_validator("tempo_factor")
    @classmethod
    def _power_of_two(cls, v: float) -> float:
        import math

        if not math.isclose(math.log2(v), round(math.log2(v)), abs_tol=1e-9):
            raise ValueError(f"tempo_factor {v} must be a power of two (0.5 = half tempo, 2 = double tempo)")
        return float(2.0 ** round(math.log2(v)))

    @property
    def is_set(self) -> bool:
        return self != RhythmCorrection()

    @property
    def beats_per_bar(self) -> int | None:
        return None if self.meter is None else meter_beats_per_bar(self.meter)


class Project(_Model):
    schema_version: int = SCHEMA_VERSION
    name: str = "Untitled"
    sample_rate: int = Field(default=44100, ge=8000, le=192000, description="rate stems are loaded at")
    stems: list[StemSpec] = Field(default_factory=list)
    stems_dir: str | None = Field(default=None, description=(
        "the folder `new --stems` read, relative to the project folder (POSIX): stems inside it or "
        "inside the project folder need no 'external'"))
    sections: list[Section] = Field(default_factory=list)
    mappings: list[Mapping] = Field(default_factory=list)
    render: RenderSettings = Field(default_factory=RenderSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    tempo: TempoSettings = Field(default_factory=TempoSettings)
    rhythm: RhythmCorrection = Field(default_factory=RhythmCorrection)
    master_fx: list[FxSlot] = Field(default_factory=list, description="effects on the export mix")

    @model_validator(mode="after")
    def _unique_stem_names(self) -> Project:
        seen: set[str] = set()
        for s in self.stems:
            if s.name in seen:
                raise ValueError(f"two stems are named {s.name!r}; give each stem a unique name")
            seen.add(s.name)
        return self

    def stem(self, name: str) -> StemSpec:
        for s in self.stems:
            if s.name == name:
                return s
        raise KeyError(name)
