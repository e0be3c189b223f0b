"""Export: mixdown levels and the MP4 writer, checked by decoding the file back with PyAV."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from bridge.errors import AudioError, Cancelled, RenderError
from bridge.export import (
    VideoWriter,
    measure_levels,
    mix_stems,
    to_stereo,
    write_video,
)
from bridge.export.presets import available_codecs
from bridge.jobs import CancelToken

SAMPLE_RATE = 48000
WIDTH, HEIGHT = 160, 90
#: 75% colour bars (BT.709 test pattern colours), white … black, each 20 px wide at 160 px.
BARS_RGB = np.array(
    [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
        [16, 16, 16],
    ],
    dtype=np.uint8,
)
BAR_WIDTH = WIDTH // len(BARS_RGB)


def sine(
    frequency_hz: float, seconds: float, *, amplitude: float = 0.5, channels: int = 2
) -> np.ndarray:
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    wave = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return np.repeat(wave[None], channels, axis=0)


def make_frame(index: int) -> np.ndarray:
    """Colour bars in the bottom half; the top third's grey level encodes the frame index."""
    frame = np.repeat(np.repeat(BARS_RGB[None], BAR_WIDTH, axis=1), HEIGHT, axis=0)
    frame[: HEIGHT // 3] = index_level(index)
    return frame


def index_level(index: int) -> int:
    return 20 + 8 * (index % 27)  # 27 distinct levels 8 apart, inside the video range


def decode_video(path: Path) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream, frames


def rms_db(x: np.ndarray) -> float:
    return 20 * math.log10(math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))))


# -- mixdown ---------------------------------------------------------------------------------------


def test_gain_db_scales_amplitude() -> None:
    stem = sine(440, 1.0, amplitude=0.4)
    mix = mix_stems([stem], gains_db=[-6.0206], sample_rate=SAMPLE_RATE)
    assert mix.dtype == np.float32 and mix.shape == (2, stem.shape[1])
    np.testing.assert_allclose(mix, stem * 0.5, atol=1e-4)
    # Two stems sum linearly below the limiter threshold.
    mix = mix_stems([stem, stem], gains_db=[-12.0412, -12.0412], sample_rate=SAMPLE_RATE)
    np.testing.assert_allclose(mix, stem * 0.5, atol=1e-4)


def test_limiter_holds_ceiling_on_clipping_sum() -> None:
    rng = np.random.default_rng(7)
    drums = rng.standard_normal((2, SAMPLE_RATE)).astype(np.float32) * 0.6
    bass = sine(55, 1.0, amplitude=0.9)
    mix = mix_stems([drums, bass], gains_db=[0.0, 3.0], sample_rate=SAMPLE_RATE, ceiling_dbfs=-0.3)
    assert np.abs(drums + bass * 1.41).max() > 2.0  # the raw sum clips hard
    ceiling = 10 ** (-0.3 / 20)
    assert np.abs(mix).max() <= ceiling + 1e-6
    # The limiter (threshold -1 dB), not the safety clip, does the work: almost no sample above it.
    assert np.mean(np.abs(mix) > 10 ** (-0.9 / 20)) < 1e-3
    assert np.isfinite(mix).all()
    assert rms_db(mix) > -12  # limited, not muted


def test_mono_upmix_and_surround_downmix() -> None:
    mono = sine(220, 0.5, amplitude=0.3, channels=1)
    mix = mix_stems([mono], gains_db=[0.0], sample_rate=SAMPLE_RATE)
    np.testing.assert_allclose(mix[0], mono[0], atol=1e-6)
    np.testing.assert_allclose(mix[1], mono[0], atol=1e-6)
    surround = np.zeros((6, 100), dtype=np.float32)
    surround[2] = 0.5  # centre -> both sides at -3 dB
    surround[3] = 0.9  # LFE is dropped
    np.testing.assert_allclose(
        to_stereo(surround), np.full((2, 100), 0.5 / math.sqrt(2)), atol=1e-6
    )


def test_silence_stays_silent_and_bad_input_is_named() -> None:
    silent = np.zeros((2, SAMPLE_RATE), dtype=np.float32)
    mix = mix_stems([silent, silent[:1]], gains_db=[0.0, 6.0], sample_rate=SAMPLE_RATE)
    assert np.array_equal(mix, silent)
    levels = measure_levels(mix, SAMPLE_RATE)
    assert all(v == -math.inf for v in levels.values())
    with pytest.raises(AudioError, match="Stem 1 has 10 samples"):
        mix_stems([silent, silent[:, :10]], gains_db=[0, 0], sample_rate=SAMPLE_RATE)
    nan_stem = silent.copy()
    nan_stem[0, 5] = np.nan
    with pytest.raises(AudioError, match="Stem 0 contains NaN"):
        mix_stems([nan_stem], gains_db=[0], sample_rate=SAMPLE_RATE)


def test_measure_levels_matches_known_sine_values() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in both front channels reads 0 LUFS (-3.01 per channel).
    full = sine(997, 3.0, amplitude=1.0)
    levels = measure_levels(full, SAMPLE_RATE)
    assert levels["peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    assert levels["rms_dbfs"] == pytest.approx(-3.01, abs=0.01)
    assert levels["loudness_lufs"] == pytest.approx(0.0, abs=0.1)
    left_only = full.copy()
    left_only[1] = 0
    assert measure_levels(left_only, SAMPLE_RATE)["loudness_lufs"] == pytest.approx(-3.01, abs=0.1)
    # -20 dBFS sine in 44.1 kHz: the filter design follows the rate.
    t = np.arange(3 * 44100) / 44100
    quiet = np.repeat((0.1 * np.sin(2 * np.pi * 997 * t))[None], 2, axis=0).astype(np.float32)
    assert measure_levels(quiet, 44100)["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)


# -- video writer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ntsc_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, Fraction]:
    """2.5 s at 30000/1001 fps with a 1 kHz sine at -9 dBFS."""
    path = tmp_path_factory.mktemp("video") / "bars.mp4"
    fps = Fraction(30000, 1001)
    n_frames = 75
    audio = sine(1000, 3.0, amplitude=0.5)  # longer than the video: must be trimmed
    seen: list[tuple[int, int, str]] = []
    out = write_video(
        path,
        (make_frame(k) for k in range(n_frames)),
        n_frames=n_frames,
        width=WIDTH,
        height=HEIGHT,
        fps=fps,
        audio=audio,
        progress=lambda done, total, label: seen.append((done, total, label)),
    )
    assert out == path
    assert seen[-1] == (n_frames, n_frames, "encoding") and len(seen) == n_frames
    return path, n_frames, fps


def test_frame_count_rate_and_duration(ntsc_video: tuple[Path, int, Fraction]) -> None:
    path, n_frames, fps = ntsc_video
    stream, frames = decode_video(path)
    assert len(frames) == n_frames
    assert stream.average_rate == fps  # exact rational, not 29.97
    assert stream.codec_context.name == "h264"
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        pts = [frame.pts for frame in container.decode(video)]
        tb = video.time_base
        assert [Fraction(p) * tb for p in pts] == [k / fps for k in range(n_frames)]
        assert container.format.name.startswith("mov")
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        last = max((p for p in container.demux(video) if p.size), key=lambda p: p.pts)
        assert Fraction(last.pts + last.duration) * video.time_base == n_frames / fps
    head = path.read_bytes()[:200_000]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")  # +faststart: index before the media


def test_frames_decode_in_order_with_right_colours(ntsc_video: tuple[Path, int, Fraction]) -> None:
    path, n_frames, _ = ntsc_video
    _, frames = decode_video(path)
    for index, rgb in enumerate(frames):
        level = rgb[4 : HEIGHT // 3 - 4].astype(float).mean()
        assert abs(level - index_level(index)) < 3, f"frame {index} out of order or wrong level"
    rgb = frames[n_frames // 2].astype(int)
    for bar, colour in enumerate(BARS_RGB):
        # The middle of each bar, away from edges where 4:2:0 chroma blends neighbours.
        patch = rgb[HEIGHT // 2 + 4 : -4, bar * BAR_WIDTH + 5 : (bar + 1) * BAR_WIDTH - 5]
        assert np.abs(patch - colour.astype(int)).max() <= 6, f"bar {bar} {colour} decoded wrong"


def test_audio_is_stereo_48k_and_as_long_as_the_video(
    ntsc_video: tuple[Path, int, Fraction],
) -> None:
    path, n_frames, fps = ntsc_video
    video_seconds = n_frames / fps
    one_frame = 1 / fps
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        assert stream.rate == SAMPLE_RATE and stream.channels == 2
        packets = [p for p in container.demux(stream) if p.size]
        declared_end = Fraction(packets[-1].pts + packets[-1].duration) * stream.time_base
    assert abs(declared_end - video_seconds) < one_frame
    with av.open(str(path)) as container:  # interleaved: audio spread through the file
        packets = [p for p in container.demux() if p.size]
        order = [p.stream.type for p in sorted(packets, key=lambda p: p.pos)]
    first_half = order[: len(order) // 2]
    assert first_half.count("audio") > 0.3 * order.count("audio")
    with av.open(str(path)) as container:
        decoded = [frame for frame in container.decode(audio=0)]
    assert decoded[0].pts == 0  # priming removed by the edit list
    samples = np.concatenate([frame.to_ndarray() for frame in decoded], axis=1)
    assert samples.shape[0] == 2
    assert abs(Fraction(samples.shape[1], SAMPLE_RATE) - video_seconds) < one_frame


def test_sine_survives_aac(ntsc_video: tuple[Path, int, Fraction]) -> None:
    path, _, _ = ntsc_video
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    steady = samples[:, 4800:-4800]  # away from the encoder's start and end
    for channel in steady:
        spectrum = np.abs(np.fft.rfft(channel * np.hanning(channel.size)))
        peak_hz = np.fft.rfftfreq(channel.size, 1 / SAMPLE_RATE)[np.argmax(spectrum)]
        assert peak_hz == pytest.approx(1000, abs=2)
        assert rms_db(channel) == pytest.approx(rms_db(sine(1000, 1.0, amplitude=0.5)), abs=1.0)


def test_short_audio_is_padded_and_mono_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pad.mp4"
    fps = Fraction(24)
    audio = sine(1000, 0.5, channels=1)  # half a second of audio for a 2 s video
    with VideoWriter(path, width=WIDTH, height=HEIGHT, fps=fps, audio=audio) as writer:
        for index in range(48):
            writer.write(make_frame(index))
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 24
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert abs(samples.shape[1] / SAMPLE_RATE - 2.0) < 1 / 24
    assert rms_db(samples[:, 2400:21600]) > -12  # the sine, both channels
    assert np.abs(samples[:, 30000:]).max() < 1e-3  # then silence


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    write_video(
        path, (make_frame(k) for k in range(10)), n_frames=10, width=WIDTH, height=HEIGHT, fps=30
    )
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0
        assert container.streams.video[0].frames == 10


def test_bad_sizes_and_frames_are_named(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="161x90.*160x90"):
        VideoWriter(tmp_path / "odd.mp4", width=161, height=90, fps=30)
    with pytest.raises(RenderError, match=r"float32 array of shape \(90, 160, 3\)"):
        with VideoWriter(tmp_path / "bad.mp4", width=WIDTH, height=HEIGHT, fps=30) as writer:
            writer.write(np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32))
    with pytest.raises(RenderError, match=r"shape \(90, 160, 4\)"):
        with VideoWriter(tmp_path / "bad.mp4", width=WIDTH, height=HEIGHT, fps=30) as writer:
            writer.write(np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8))
    # yuv420p planes (what the shader engine converts on a GPU) suit a yuv420p codec only
    if "prores" in available_codecs():
        with pytest.raises(RenderError, match=r"yuv420p planes.*RGB uint8 of shape \(90, 160, 3\)"):
            with VideoWriter(tmp_path / "bad.mov", width=WIDTH, height=HEIGHT, fps=30, codec="prores") as writer:
                writer.write(np.zeros((HEIGHT * 3 // 2, WIDTH), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_yuv420p_planes_are_encoded_as_they_are(tmp_path: Path) -> None:
    """Planes handed over already converted come back from a lossless file byte for byte (a luma
    ramp, then chroma bytes of two levels)."""
    planes = np.empty((HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)
    planes[:HEIGHT] = np.arange(WIDTH, dtype=np.uint8)[None] // 2 + 30  # a luma ramp
    planes[HEIGHT:HEIGHT + HEIGHT // 4] = 90  # U
    planes[HEIGHT + HEIGHT // 4:] = 170  # V
    path = write_video(tmp_path / "planes.mp4", iter([planes] * 3), n_frames=3, width=WIDTH, height=HEIGHT,
                       fps=30, crf=0)
    with av.open(str(path)) as container:
        got = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    assert len(got) == 3 and all(np.array_equal(g, planes) for g in got)


def test_missing_h264_encoder_is_a_render_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(av, "codecs_available", {"aac", "h264"})
    with pytest.raises(RenderError, match="No H.264 encoder"):
        VideoWriter(tmp_path / "x.mp4", width=WIDTH, height=HEIGHT, fps=30)


def cancel_after(token: CancelToken, n: int):
    for index in range(100):
        if index == n:
            token.cancel()
        yield make_frame(index)


def test_cancel_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous export")
    token = CancelToken()
    with pytest.raises(Cancelled):
        write_video(
            path,
            cancel_after(token, 20),
            n_frames=100,
            width=WIDTH,
            height=HEIGHT,
            fps=30,
            audio=sine(1000, 4.0),
            cancel=token,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert path.read_bytes() == b"previous export"


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_exception_mid_write_removes_temp_file(tmp_path: Path, error: type[BaseException]) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(error):
        with VideoWriter(path, width=WIDTH, height=HEIGHT, fps=30, audio=sine(440, 1.0)) as writer:
            for index in range(15):
                writer.write(make_frame(index))
            assert any(p.name.startswith(".out.mp4.") and ".partial" in p.name for p in tmp_path.iterdir())
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_short_frame_source_saves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    with pytest.raises(RenderError, match="ended after 5 of 8 frames"):
        write_video(
            path, (make_frame(k) for k in range(5)), n_frames=8, width=WIDTH, height=HEIGHT, fps=30
        )
    assert list(tmp_path.iterdir()) == []
