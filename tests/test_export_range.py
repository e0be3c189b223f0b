"""A range export prepares only the song it plays, and hears and sees what a whole-song export does.

Truths: the whole song's export prepared the long way (every stem from its first sample), and an
independent mix (soundfile decoding, scipy's polyphase resampler, a plain sum) where the limiter
does not act. Material: a real song's stems from ../shared/data (skipped without it).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import shared_data

from bridge.analysis.project import analyze_project
from bridge.export.render import prepare_render
from bridge.project import load_project
from bridge.project.create import new_project

FPS = Fraction(30)
RATE = 48000


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A real song's four FLAC stems at 44.1 kHz (the export resamples them to 48 kHz). The drums come
    in 10 s late and 16 dB hot, so the limiter acts from 10 s on (most seconds); the lead starts 0.5 s before the
    song (its first half second is cut)."""
    stems = shared_data("songs", "03_freedoom_e2m6_concept_of_technology_3-4")
    folder = tmp_path_factory.mktemp("song") / "project"
    new_project(folder, stems)
    project, project_dir = load_project(folder)
    changes = {"drums": {"offset_seconds": 10.0, "gain_db": 16.0}, "lead": {"offset_seconds": -0.5}}
    project = project.model_copy(update={"stems": [s.model_copy(update=changes.get(s.name, {}))
                                                   for s in project.stems]})
    analysis = analyze_project(project, project_dir)
    whole = prepare_render(project, project_dir, analysis=analysis, width=64, height=36, fps=FPS,
                           engine_name="shader", look="oscilloscope")
    return project, project_dir, analysis, whole


def _range(song, start_s, end_s):
    project, project_dir, analysis, _ = song
    return prepare_render(project, project_dir, analysis=analysis, width=64, height=36, fps=FPS,
                          engine_name="shader", look="oscilloscope", start_s=start_s, end_s=end_s)


@pytest.mark.parametrize(("start_s", "end_s"), [(20.0, 22.0), (4.0, 6.0)])
def test_a_range_hears_and_sees_the_whole_songs_samples(song, start_s, end_s):
    """20–22 s: the limiter works there (the hot drums), so the range's own mix window settles;
    4–6 s: it has not acted yet, which a window cannot prove, so the mix starts at the song's start."""
    whole = song[3]
    job = _range(song, start_s, end_s)
    a0 = int(round(job.range.start_frame / FPS * RATE))
    # the muxed soundtrack: the whole mix's samples of the range, bit for bit
    np.testing.assert_array_equal(job.audio, whole.audio[:, a0:a0 + job.audio.shape[1]])
    # what the shader's audio inputs read for every prepared frame (pre-roll included): the same
    first = int(round(job.params.start_frame / FPS * RATE)) - 1024
    assert set(job.context.audio) == set(whole.context.audio) == {"mix", "bass", "drums", "lead", "other"}
    for name, audio in job.context.audio.items():
        end = int(round((job.range.start_frame + job.range.n_frames) / FPS * RATE))
        np.testing.assert_array_equal(audio[first:end], whole.context.audio[name][first:end], err_msg=name)


def test_a_range_where_the_limiter_works_decodes_only_its_part_of_the_song(song):
    job = _range(song, 20.0, 22.0)
    mix = job.context.audio["mix"]
    # nothing was read for the first 15 s (the whole song's mix has sound there)
    assert not mix[:15 * RATE].any() and song[3].context.audio["mix"][:15 * RATE].any()
    assert mix[18 * RATE:22 * RATE].any()


def test_the_range_mix_is_the_stems_summed_where_the_limiter_rests(song):
    """Independent of the loader: soundfile + scipy.signal.resample_poly + the offsets by hand. Both
    are compared below 16 kHz: above, the reference's own filter (a Kaiser window) rolls off."""
    import soundfile as sf
    from scipy.signal import butter, resample_poly, sosfiltfilt

    project, project_dir, _, _ = song
    job = _range(song, 4.0, 6.0)
    a0 = int(round(job.range.start_frame / FPS * RATE))
    n = job.audio.shape[1]
    ref = np.zeros((2, n))
    for s in project.stems:
        x, rate = sf.read(str(project_dir / s.path), dtype="float64", always_2d=True)
        assert rate == 44100
        y = resample_poly(x.T, 160, 147, axis=1, window=("kaiser", 8.0))
        at = a0 - int(round(s.offset_seconds * RATE))  # the stem's sample heard at the range's start
        heard = np.zeros((2, n))
        lo, hi = max(at, 0), min(at + n, y.shape[1])
        if hi > lo:
            heard[:, lo - at:hi - at] = y[:, lo:hi]
        ref += 10 ** (s.gain_db / 20) * heard
    assert np.abs(ref).max() < 10 ** (-1 / 20)  # below the limiter's threshold: the mix is the sum
    low = butter(8, 16000, fs=RATE, output="sos")
    got, ref = sosfiltfilt(low, job.audio.astype(np.float64)), sosfiltfilt(low, ref)
    inner = slice(4800, n - 4800)

    def snr_db(a: np.ndarray, b: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(b ** 2) / np.sum((a - b) ** 2)))

    assert snr_db(got[:, inner], ref[:, inner]) > 60
    # one sample early or late: the error is the signal's own slope
    assert snr_db(got[:, inner.start + 1:inner.stop + 1], ref[:, inner]) < 30


def test_a_range_draws_the_same_frames_as_the_whole_song(song):
    """The oscilloscope look draws the mix's waveform: the range's frames (after its own pre-roll) are
    bit for bit those frames of a render from the song's start; with its audio silenced they are not
    (so the check sees the audio)."""
    from dataclasses import replace

    from bridge.visuals import get_engine

    def frames(job, until: int) -> dict[int, np.ndarray]:
        engine = get_engine(job.engine_key, **job.engine_settings)
        engine.start(job.context)
        p, out = job.params, {}
        try:
            for i in range(min(len(p), until - p.start_frame)):
                image = engine.render(p.start_frame + i, p.row(i), int(p.section_index[i]), float(p.section_mix[i]))
                if p.start_frame + i >= job.range.start_frame:
                    out[p.start_frame + i] = image
        finally:
            engine.close()
        return out

    job = _range(song, 20.0, 22.0)
    end = job.range.start_frame + job.range.n_frames
    got, truth = frames(job, end), frames(song[3], end)
    assert sorted(got) == list(range(job.range.start_frame, end))
    for k, image in got.items():
        np.testing.assert_array_equal(image, truth[k], err_msg=f"frame {k}")
    deaf = replace(job, context=replace(job.context, audio={k: np.zeros_like(v) for k, v in job.context.audio.items()}))
    assert any(not np.array_equal(image, got[k]) for k, image in frames(deaf, end).items())


@pytest.mark.parametrize(("start_s", "end_s", "says"), [
    (40.0, 45.0, "--start 40 --end 45 starts at or after the song's end; the song is 32.50 s long"),
    (40.0, None, "--start 40 starts at or after the song's end; the song is 32.50 s long"),
    (5.0, 3.0, "--start 5 --end 3 is empty or negative"),
    (-2.0, 3.0, "--start -2 --end 3 is empty or negative"),
    (float("nan"), 3.0, "--start nan --end 3 is empty or negative"),
])
def test_a_range_outside_the_song_is_refused_with_the_values_the_producer_gave(start_s, end_s, says):
    """The message quotes what was typed (it quoted the song's length as the --end) and says why."""
    from bridge.errors import RenderError
    from bridge.export.job import frame_range

    with pytest.raises(RenderError) as e:
        frame_range(32.5, FPS, start_s=start_s, end_s=end_s)
    assert says in str(e.value)
    assert "pick 0 <= start < end <= 32.50" in str(e.value)
