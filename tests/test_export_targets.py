"""Export for where the video goes (issue 14 item 5): size/fps presets that reframe the picture,
H.264 / HEVC / ProRes 422, CRF or bit rate, a region (whole song, a section, start/end).

Every check is on a real encode, read back with PyAV (FFmpeg's demuxers and decoders, independent of
the writer): codec, profile, size, frame rate, frame count, duration, bit rate. Material: the
synthetic 8 s, 120 BPM project of tests/preview_project.py (sections 0–4 s "intro", 4–8 s "verse").
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import require_gl
from preview_project import built, project_dir  # noqa: F401  (fixtures)

from bridge.errors import RenderError
from bridge.export.presets import CODECS, PRESETS, available_codecs, get_preset
from bridge.export.render import render_project
from bridge.project import load_project
from bridge.visuals import RenderContext, SectionLook, get_engine


def probe(path: Path) -> dict:
    """What a player sees in the file (decoded, not read from the writer's own settings)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f for f in c.decode(v)]
        info = {
            "codec": v.codec_context.name, "profile": v.codec_context.profile, "tag": v.codec_tag,
            "width": v.codec_context.width, "height": v.codec_context.height,
            "fps": Fraction(v.average_rate), "frames": len(frames),
            "duration": float(c.duration / av.time_base), "bit_rate": v.bit_rate,
            "first": frames[0].to_ndarray(format="rgb24"), "audio": bool(c.streams.audio),
            "pix_fmt": frames[0].format.name,
        }
    return info


def test_presets_are_the_sizes_platforms_ask_for() -> None:
    sizes = {name: (p.width, p.height, p.fps) for name, p in PRESETS.items()}
    assert sizes == {"1080p30": (1920, 1080, "30"), "1080p60": (1920, 1080, "60"), "4k30": (3840, 2160, "30"),
                     "vertical-1080": (1080, 1920, "30"), "square-1080": (1080, 1080, "30")}
    with pytest.raises(RenderError, match="vertical-1080"):
        get_preset("tiktok")


@pytest.mark.parametrize("codec", ["h264", "hevc", "prores"])
def test_each_codec_encodes_a_file_players_read_back(project_dir: Path, codec: str) -> None:  # noqa: F811
    if codec not in available_codecs():
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    project, _ = load_project(project_dir)
    out = project_dir / f"clip{CODECS[codec].default_suffix}"
    render_project(project, project_dir, out, width=96, height=160, fps=15, start_s=1.0, end_s=3.0, codec=codec)
    info = probe(out)
    assert info["codec"] == {"h264": "h264", "hevc": "hevc", "prores": "prores"}[codec]
    assert (info["width"], info["height"]) == (96, 160)
    assert info["fps"] == 15 and info["frames"] == 30
    assert info["duration"] == pytest.approx(2.0, abs=0.05)
    assert info["audio"]
    assert info["first"].std() > 5  # a picture, not a blank frame
    if codec == "hevc":
        assert info["tag"] == "hvc1"  # Apple's players (QuickTime, iOS) only take HEVC tagged hvc1
    if codec == "prores":
        assert info["profile"] == "Standard" and info["pix_fmt"] == "yuv422p10le"  # ProRes 422


def test_bitrate_sets_the_rate_and_crf_the_quality(project_dir: Path) -> None:  # noqa: F811
    from bridge.export.video import write_video

    rng = np.random.default_rng(5)
    frames = [cv2_blur(rng.integers(0, 256, (108, 192, 3), dtype=np.uint8)) for _ in range(60)]

    def encode(name: str, **quality) -> Path:
        out = project_dir / name
        write_video(out, iter(frames), n_frames=60, width=192, height=108, fps=30, **quality)
        return out

    for target in (300_000, 1_200_000):
        rate = probe(encode(f"rate{target}.mp4", bitrate=target))["bit_rate"]
        assert 0.5 * target <= rate <= 1.6 * target, (target, rate)
    assert probe(encode("hevc.mp4", codec="hevc", bitrate=300_000))["bit_rate"] <= 1.6 * 300_000
    sizes = {crf: encode(f"crf{crf}.mp4", crf=crf).stat().st_size for crf in (12, 40)}
    assert sizes[12] > 3 * sizes[40]
    project, _ = load_project(project_dir)
    with pytest.raises(RenderError, match="fixed data rate"):
        render_project(project, project_dir, project_dir / "p.mov", codec="prores", bitrate=8_000_000,
                       end_s=1.0)
    with pytest.raises(RenderError, match="render.mov"):  # ProRes does not go in MP4: say what to name it
        render_project(project, project_dir, project_dir / "render.mp4", codec="prores", end_s=1.0)


def cv2_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (5, 5), 1.5)


def test_a_missing_encoder_names_the_codecs_that_are_there(project_dir: Path, monkeypatch) -> None:  # noqa: F811
    import bridge.export.presets as presets

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {
        n for n in CODECS["hevc"].encoders})
    presets._open_error.cache_clear()
    assert "hevc" not in available_codecs()
    project, _ = load_project(project_dir)
    with pytest.raises(RenderError, match=r"No HEVC \(H.265\) encoder.*H.264, ProRes 422") as err:
        render_project(project, project_dir, project_dir / "x.mp4", codec="hevc", end_s=1.0)
    assert "libx265" in str(err.value)
    assert not list(project_dir.glob("x*.mp4"))


def test_a_section_is_a_region(project_dir: Path) -> None:  # noqa: F811
    project, _ = load_project(project_dir)
    out = project_dir / "verse.mp4"
    render_project(project, project_dir, out, width=64, height=64, fps=10, section="verse")
    info = probe(out)
    assert info["frames"] == 40 and info["duration"] == pytest.approx(4.0, abs=0.05)  # 4 s – 8 s
    render_project(project, project_dir, out, width=64, height=64, fps=10, section="1")
    assert probe(out)["frames"] == 40  # intro: 0 – 4 s
    with pytest.raises(RenderError, match=r"1 \(intro\), 2 \(verse\)"):
        render_project(project, project_dir, out, width=64, height=64, section="chorus")
    with pytest.raises(RenderError, match="not both"):
        render_project(project, project_dir, out, section="verse", start_s=1.0)


def test_cli_renders_the_vertical_preset(project_dir: Path, capsys) -> None:  # noqa: F811
    from bridge.cli import main

    out = project_dir / "reel.mp4"
    assert main(["render", str(project_dir), "--preset", "vertical-1080", "--end", "1",
                 "-o", str(out), "-q"]) == 0
    info = probe(out)
    assert (info["codec"], info["width"], info["height"], info["fps"]) == ("h264", 1080, 1920, 30)
    assert info["frames"] == 30 and info["duration"] == pytest.approx(1.0, abs=0.05)
    assert main(["render", str(project_dir), "--preset", "square-1080", "--codec", "prores", "--end", "0.5",
                 "-q"]) == 0
    info = probe(project_dir / "render.mov")  # the default name follows the codec
    assert (info["codec"], info["width"], info["height"]) == ("prores", 1080, 1080)
    assert main(["render", str(project_dir), "--preset", "4k30", "--bitrate", "fast", "-q"]) == 2
    assert "8M" in capsys.readouterr().err


def _decoded(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames (n, h, w, 3) uint8, audio (channels, samples) float32, sample rate) as a player decodes them."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        audio = np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1).astype(np.float32)
        rate = stream.codec_context.sample_rate
    return frames, audio, rate


def test_fades_darken_the_picture_and_ramp_the_sound(project_dir: Path, capsys) -> None:  # noqa: F811
    """A 3 s clip with 1 s fades, against the same clip without them, both decoded with PyAV: the
    first and last frames are black, a frame a third into the fade-in is about a third as bright,
    the middle is untouched; the sound's RMS ramps with the fades (AAC adds ~1 % noise)."""
    from bridge.cli import main

    project, _ = load_project(project_dir)
    plain, faded = project_dir / "plain.mp4", project_dir / "faded.mp4"
    # the procedural engine: a bright picture everywhere, so a fade's ratio is measured precisely
    region = {"width": 96, "height": 160, "fps": 15, "start_s": 1.0, "end_s": 4.0, "engine_name": "procedural"}
    render_project(project, project_dir, plain, **region)
    render_project(project, project_dir, faded, fade_in_s=1.0, fade_out_s=1.0, **region)
    pv, pa, rate = _decoded(plain)
    fv, fa, _ = _decoded(faded)
    assert len(pv) == len(fv) == 45
    bright = pv.reshape(45, -1).mean(axis=1)
    ratio = fv.reshape(45, -1).mean(axis=1) / bright
    assert bright.min() > 20  # the plain clip is a picture throughout
    assert fv[0].max() <= 20 and fv[-1].max() <= 20  # black (limited range: 16)
    assert ratio[5] == pytest.approx(5 / 15, abs=0.07)  # frame 5 of a 15-frame fade
    assert ratio[22] == pytest.approx(1.0, abs=0.03)  # the middle is as rendered
    assert ratio[39] == pytest.approx(5 / 15, abs=0.07)  # 5 frames before the last one

    def rms(audio: np.ndarray, t: float) -> float:
        a = audio[:, int((t - 0.05) * rate):int((t + 0.05) * rate)]
        return float(np.sqrt(np.mean(a ** 2)))

    for t, expected in ((0.25, 0.25), (0.5, 0.5), (0.75, 0.75), (1.5, 1.0), (2.25, 0.75), (2.75, 0.25)):
        assert rms(fa, t) / rms(pa, t) == pytest.approx(expected, abs=0.06), t
    # the command line takes the same fades, and refuses fades longer than the clip
    assert main(["render", str(project_dir), "--start", "1", "--end", "2", "--fade-in", "0.6",
                 "--fade-out", "0.6", "-o", str(project_dir / "cli.mp4"), "-q"]) == 2
    assert "longer than the 1.00 s" in capsys.readouterr().err
    assert main(["render", str(project_dir), "--width", "64", "--height", "64", "--fps", "10", "--end", "1",
                 "--fade-in", "0.5", "--engine", "procedural", "-o", str(project_dir / "cli.mp4"), "-q"]) == 0
    frames, _, _ = _decoded(project_dir / "cli.mp4")
    assert frames[0].max() <= 20 and frames[-1].mean() > 20


def _procedural_frame(width: int, height: int, params: dict, frames: int = 8) -> np.ndarray:
    engine = get_engine("procedural", working_scale=1.0)
    engine.start(RenderContext(width, height, Fraction(30), (SectionLook(0.0, 100.0, "a"),), seed=3))
    try:
        for i in range(frames):
            image = engine.render(i, params, 0, 1.0)
    finally:
        engine.close()
    return image.astype(int)


def test_the_procedural_picture_is_reframed_not_stretched() -> None:
    """The engine composes in units of the shorter side about the centre: a portrait or square frame
    holds the landscape frame's central square, pixel for pixel (a stretched one would differ
    everywhere; a square one differs only by its vignette). With rotation the feedback turns in what lies outside the frame, which differs
    by aspect, so there only the inner part must agree."""
    import cv2

    zoom = {"pulse": 0.3, "zoom": 0.02}
    landscape = _procedural_frame(192, 108, zoom)
    centre = landscape[:, 42:150]
    assert centre.std() > 10
    assert np.abs(_procedural_frame(108, 192, zoom)[42:150, :] - centre).max() <= 1
    # a square frame: the same picture, under a vignette that follows its nearer corners (darker
    # towards the edge than the wide frame's), so equal near the centre and close within half a unit
    y, x = np.mgrid[0:108, 0:108]
    r = np.hypot(x - 53.5, y - 53.5) / 54
    square = np.abs(_procedural_frame(108, 108, zoom) - centre)
    assert square[r < 0.3].max() <= 2 and square[r < 0.5].mean() < 1.5
    squeezed = cv2.resize(landscape.astype(np.uint8), (108, 192)).astype(int)[42:150]
    assert np.abs(squeezed - centre).mean() > 10  # the check would see a stretch
    turn = {"pulse": 0.3, "rotation": 2.0}
    inner = _procedural_frame(192, 108, turn)[20:88, 62:130]
    assert np.abs(_procedural_frame(108, 192, turn)[62:130, 20:88] - inner).max() <= 1


CIRCLE_ISF = """/*{"ISFVSN": "2"}*/
void main() {
    // a disc of radius 0.3 of the shorter side, centred: round whatever the frame's aspect
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / min(RENDERSIZE.x, RENDERSIZE.y);
    gl_FragColor = vec4(vec3(step(length(p), 0.3)), 1.0);
}
"""


@pytest.mark.parametrize("preset", ["vertical-1080", "square-1080"])
def test_the_shader_engine_renders_a_round_disc_at_the_presets_size(project_dir: Path, preset: str) -> None:  # noqa: F811
    require_gl()
    look = project_dir / "disc.fs"
    look.write_text(CIRCLE_ISF)
    project, _ = load_project(project_dir)
    out = project_dir / "disc.mp4"
    render_project(project, project_dir, out, preset=preset, engine_name="shader", look=str(look),
                   start_s=0.0, end_s=0.2)
    info = probe(out)
    p = get_preset(preset)
    assert (info["width"], info["height"], info["fps"]) == (p.width, p.height, Fraction(p.fps))
    lit = info["first"].mean(axis=2) > 128
    ys, xs = np.nonzero(lit)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    expected = 0.6 * min(p.width, p.height)
    assert w == pytest.approx(expected, abs=3) and h == pytest.approx(expected, abs=3)
    assert lit.sum() == pytest.approx(np.pi * (expected / 2) ** 2, rel=0.02)  # a disc, not a box
    assert (xs.min() + xs.max()) / 2 == pytest.approx(p.width / 2, abs=2)
    assert (ys.min() + ys.max()) / 2 == pytest.approx(p.height / 2, abs=2)


def _shader_frame(look: str, width: int, height: int, params: dict) -> np.ndarray:
    engine = get_engine("shader", look=look)
    engine.start(RenderContext(width, height, Fraction(30), (SectionLook(0.0, 100.0, "a"),), seed=3))
    try:
        return engine.render(0, params, 0, 1.0).astype(int)
    finally:
        engine.close()


@pytest.mark.parametrize("size", [(192, 108), (108, 192), (108, 108)])
def test_shipped_looks_compose_for_narrow_frames(size: tuple[int, int]) -> None:
    """The looks that placed things in 0–1 frame coordinates: the ink drop (the first frame shows
    only it) is round, and the titles' counter box fits across a vertical or square frame."""
    require_gl()
    width, height = size
    ink = _shader_frame("ink", width, height, {"travel": 0.0, "strength": 0.5})
    ys, xs = np.nonzero(ink.max(axis=2) > 20)
    assert xs.max() - xs.min() == ys.max() - ys.min()  # round: as wide as high, in any frame
    titles = _shader_frame("titles", width, height, {})
    row = titles[height // 2].mean(axis=1)
    text = row > 200  # the numerals (ink) on the dark box
    box = text | (row < 12)
    assert box.sum() < 0.9 * width and not box[:3].any() and not box[-3:].any()  # the card shows either side
    cols = np.nonzero(text)[0]
    assert cols.min() >= 0.05 * width and cols.max() < 0.95 * width and cols.max() - cols.min() > 0.4 * width


def test_the_encoder_can_be_chosen_and_a_missing_one_names_what_opens_here(project_dir: Path) -> None:  # noqa: F811
    """auto: software first (libx264, the same file everywhere); a named encoder or "hardware" that does
    not open on this machine is a RenderError listing the encoders that do — before anything renders.
    On a machine with an NVIDIA GPU and driver (NVENC opens), hardware picks it instead."""
    from bridge.export.presets import encoders_available, is_hardware_encoder, pick_encoder
    from bridge.project.schema import RenderSettings

    assert RenderSettings(encoder=" H264_NVENC").encoder == "h264_nvenc"  # kept in the project as typed
    chosen = RenderSettings(encoder="hardware").model_dump(mode="json")
    assert RenderSettings.model_validate(chosen).encoder == "hardware"
    # no choice, nothing written: the project still opens in versions without the field
    assert "encoder" not in RenderSettings().model_dump(mode="json")
    with pytest.raises(ValueError, match="not an encoder name"):
        RenderSettings(encoder="h264 nvenc")
    opens = encoders_available("h264", 160, 96, 15)
    assert "libx264" in opens  # the PyPI wheel's
    assert pick_encoder("h264", 160, 96, Fraction(15)) == "libx264"
    assert pick_encoder("h264", 160, 96, Fraction(15), prefer=" LIBX264") == "libx264"
    with pytest.raises(RenderError, match="does not make H.264.*libx264"):
        pick_encoder("h264", 160, 96, Fraction(15), prefer="libx265")
    with pytest.raises(RenderError, match="unknown.*h264_nvenc"):
        pick_encoder("h264", 160, 96, Fraction(15), prefer="x264-fast")
    hardware = [name for name in opens if is_hardware_encoder(name)]
    if hardware:  # a GPU machine
        assert pick_encoder("h264", 160, 96, Fraction(15), prefer="hardware") == hardware[0]
    else:
        with pytest.raises(RenderError, match="No hardware H.264 encoder.*h264_nvenc.*open here.*libx264"):
            pick_encoder("h264", 160, 96, Fraction(15), prefer="hardware")
    if "h264_nvenc" not in opens:
        project, _ = load_project(project_dir)
        with pytest.raises(RenderError, match="'h264_nvenc' does not open.*open here at 160x96: libx264"):
            render_project(project, project_dir, project_dir / "gpu.mp4", width=160, height=96, fps=15,
                           end_s=1.0, encoder="h264_nvenc")
        assert not list(project_dir.glob("gpu*.mp4"))


def test_cli_encoder_option_exports_with_the_named_encoder(project_dir: Path, capsys) -> None:  # noqa: F811
    from bridge.cli import main

    out = project_dir / "named.mp4"
    assert main(["render", str(project_dir), "--encoder", "libx264", "--width", "64", "--height", "64",
                 "--fps", "10", "--end", "0.5", "-o", str(out), "-q"]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        # x264 writes its name and settings into the stream (an SEI message): the encoder, read back
        first = next(c.demux(c.streams.video[0]))
        assert b"x264 - core" in bytes(first)
    assert main(["render", str(project_dir), "--encoder", "nvenc9", "--end", "0.5", "-q"]) == 2
    assert "nvenc9" in capsys.readouterr().err


def test_a_render_past_the_songs_end_says_it_stops_at_the_end(project_dir: Path, capsys) -> None:  # noqa: F811
    """`render --start 4 --end 99` made a shorter video than asked without a word."""
    from bridge.analysis.project import analyze_project
    from bridge.cli import main

    project, _ = load_project(project_dir)
    song_s = analyze_project(project, project_dir).duration_seconds
    out = project_dir / "tail.mp4"
    assert main(["render", str(project_dir), "--width", "64", "--height", "64", "--fps", "10", "--start",
                 f"{song_s - 1:.2f}", "--end", "99", "--engine", "procedural", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"--end 99 is past the song's end; rendering to its end, {song_s:.2f} s" in err
    assert probe(out)["duration"] == pytest.approx(1.0, abs=0.15)
