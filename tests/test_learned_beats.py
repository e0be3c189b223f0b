"""The optional learned beat tracker (Beat This!): the real loading, front end, chunked inference and
post-processing, on a tiny checkpoint of the real model class that the test builds (random weights,
small dims). Nothing is downloaded: `models pull` is tested against a file:// mirror."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import mir_eval
import numpy as np
import pytest
from conftest import click_track, write_wav

torch = pytest.importorskip("torch")
pytest.importorskip("beat_this.model.beat_tracker", reason="needs stembridge[beatthis] + beat-this (--no-deps)")

from bridge.analysis import learned_beats as LB  # noqa: E402
from bridge.cli import main  # noqa: E402

TINY = {"spect_dim": 128, "transformer_dim": 32, "ff_mult": 1, "n_layers": 1, "head_dim": 8, "stem_dim": 8}


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Nothing may download: any URL other than file:// fails the test; checkpoints live in tmp."""
    real = urllib.request.urlopen

    def only_files(url, *a, **k):
        assert str(url).startswith("file://"), f"tried to download {url}"
        return real(url, *a, **k)

    monkeypatch.setattr(urllib.request, "urlopen", only_files)
    monkeypatch.setenv("STEMBRIDGE_BEAT_MODEL_DIR", str(tmp_path / "beat_models"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    """A checkpoint laid out as the authors' (Lightning: hyper_parameters + state_dict under "model.")."""
    from beat_this.model.beat_tracker import BeatThis

    torch.manual_seed(0)
    model = BeatThis(**TINY)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"hyper_parameters": {**TINY, "lr": 8e-4, "loss_type": "shift_tolerant_weighted_bce"},
                "state_dict": {f"model.{k}": v for k, v in state.items()}}, path)
    return path, state


def test_log_mel_matches_librosa():
    """Our torchaudio-free front end against librosa's independent mel spectrogram, same settings."""
    import librosa

    rng = np.random.default_rng(3)
    t = np.arange(3 * LB.SAMPLE_RATE) / LB.SAMPLE_RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    ours = LB.log_mel(x).numpy()
    # beat_this configures torchaudio's MelSpectrogram with normalized="frame_length", which torchaudio
    # passes on as torch.stft(normalized=True): magnitudes × n_fft^-0.5
    ref = librosa.feature.melspectrogram(
        y=x, sr=LB.SAMPLE_RATE, n_fft=LB.N_FFT, hop_length=LB.HOP, window="hann", center=True, pad_mode="reflect",
        power=1.0, n_mels=128, fmin=30.0, fmax=11000.0, htk=False, norm=None) / np.sqrt(LB.N_FFT)
    ref = np.log1p(1000.0 * ref).T
    assert ours.shape == ref.shape == (1 + x.size // LB.HOP, 128)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3)


def test_tiny_checkpoint_loads_its_own_weights(tiny_checkpoint):
    path, state = tiny_checkpoint
    model = LB.load_model(str(path))
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    assert not model.training


def test_chunked_inference_covers_every_frame_and_keeps_each_chunks_frames(tiny_checkpoint):
    """Split / predict / aggregate as beat_this.inference does it (chunks shortened to 200 frames to
    keep the test fast on a CPU; production uses 1500)."""
    model = LB.load_model(str(tiny_checkpoint[0]))
    torch.manual_seed(1)
    n, chunk, border = 450, 200, 6  # three chunks, the last one shifted to end at the piece's end
    spect = torch.rand(n, 128)
    beat, downbeat = LB.predict_frames(model, spect, chunk_frames=chunk, border_frames=border)
    assert beat.shape == downbeat.shape == (n,)
    assert bool((beat > -1000).all()) and bool((downbeat > -1000).all())
    # the first frames come from the first chunk: the spectrogram's first chunk-border frames after
    # `border` frames of zero padding, minus the border frames at each end
    keep = chunk - 2 * border
    with torch.inference_mode():
        first = model(torch.nn.functional.pad(spect[:chunk - border], (0, 0, border, 0)).unsqueeze(0))
        last = model(torch.nn.functional.pad(spect[n - (chunk - border):], (0, 0, 0, border)).unsqueeze(0))
    np.testing.assert_allclose(beat[:keep].numpy(), first["beat"][0][border:-border].numpy(), rtol=1e-4, atol=1e-4)
    # the last frames come from the last chunk, which ends at the piece's end
    np.testing.assert_allclose(downbeat[-50:].numpy(), last["downbeat"][0][-50 - border:-border].numpy(),
                               rtol=1e-4, atol=1e-4)


def test_the_packages_post_processing_turns_logits_into_the_true_beats():
    """Logits peaking (over several frames) at a 131 BPM 4/4 click's beats → those beats and bars."""
    seconds, period = 20.0, 60.0 / 131.0
    truth = np.arange(0.4, seconds - 0.1, period)
    frames_t = np.arange(int(seconds * LB.FPS) + 1) / LB.FPS
    dist = np.min(np.abs(frames_t[:, None] - truth[None, :]), axis=1)
    beat = torch.tensor(12.0 * np.exp(-(dist / 0.03) ** 2) - 6.0, dtype=torch.float32)
    dist_db = np.min(np.abs(frames_t[:, None] - truth[::4][None, :]), axis=1)
    downbeat = torch.tensor(12.0 * np.exp(-(dist_db / 0.03) ** 2) - 6.0, dtype=torch.float32)
    grid = LB.grid_from_logits(beat, downbeat, duration_seconds=seconds)
    assert grid.source == "beat-this" and grid.beats_per_bar == 4
    assert grid.tempo_bpm == pytest.approx(131.0, rel=0.02)
    assert mir_eval.beat.f_measure(truth, grid.beats_s, 0.02) == 1.0
    assert mir_eval.beat.f_measure(truth[::4], grid.downbeats_s, 0.02) == 1.0


@pytest.fixture
def click_project(tmp_path) -> Path:
    from bridge.project.create import new_project

    audio, _ = click_track(120.0, 8.0, 22050)
    write_wav(tmp_path / "stems" / "Song Drums.wav", audio, 22050)
    new_project(tmp_path / "proj", tmp_path / "stems")
    return tmp_path / "proj"


def test_analyze_with_the_tiny_checkpoint_runs_the_model_end_to_end(click_project, tiny_checkpoint, capsys):
    path = tiny_checkpoint[0]
    capsys.readouterr()
    assert main(["analyze", str(click_project), "--beat-model", str(path), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tempo_source"] == "beat-this"
    beats = np.asarray(out["beats"])
    assert np.all((beats >= 0) & (beats <= out["duration_seconds"]))
    assert np.allclose(beats * LB.FPS, np.round(beats * LB.FPS), atol=1e-3)  # on the model's 50 fps grid
    assert set(out["downbeats"]) <= set(out["beats"])
    saved = json.loads((click_project / "stembridge.json").read_text())["rhythm"]
    assert saved["beat_model"] == str(path.resolve())
    # back to the DSP tracker
    assert main(["analyze", str(click_project), "--beat-model", "dsp", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["tempo_source"] == "detected"


@pytest.mark.parametrize(("ref", "words"), [
    ("final0", ["not on this computer", "stembridge models pull beat-this:final0", "--beat-model /path/to"]),
    ("beat-this:small1", ["stembridge models pull beat-this:small1"]),
    ("grand0", ["neither a file nor", "final0"]),
    ("/nowhere/model.ckpt", ["'/nowhere/model.ckpt' is not a file"]),
])
def test_a_missing_checkpoint_fails_at_once_with_the_fix(click_project, capsys, ref, words):
    before = (click_project / "stembridge.json").read_text()
    capsys.readouterr()
    assert main(["analyze", str(click_project), "--beat-model", ref, "-q"]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert (click_project / "stembridge.json").read_text() == before


def test_models_pull_fetches_a_checkpoint_once(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "small0.ckpt").write_bytes(tiny_checkpoint[0].read_bytes())
    (mirror / "small1.ckpt").write_text("<html>not found</html>")
    monkeypatch.setenv("STEMBRIDGE_BEAT_MODEL_URL", mirror.as_uri())
    capsys.readouterr()
    assert main(["models", "pull", "beat-this:small0"]) == 0
    got = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert got == LB.checkpoint_dir() / "beat_this-small0.ckpt"
    assert got.read_bytes() == tiny_checkpoint[0].read_bytes()
    assert LB.resolve_checkpoint("small0") == got
    (mirror / "small0.ckpt").unlink()
    assert main(["models", "pull", "beat-this:small0"]) == 0  # already here: no download
    assert main(["models", "pull", "beat-this:small1"]) == 2  # a broken download is not kept
    assert "not a Beat This! checkpoint" in capsys.readouterr().err
    assert not (LB.checkpoint_dir() / "beat_this-small1.ckpt").exists()
    assert [p.name for p in LB.checkpoint_dir().iterdir()] == ["beat_this-small0.ckpt"]
