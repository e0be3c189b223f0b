"""Kick, snare and hi-hat hits inside one drums stem: per-part onset curves for the mappings.

A producer who bounces the kit as one "Drums" stem (or separates a mix with Demucs, whose drums
stem is the whole kit) still wants the kick to punch, the snare to flash and the hats to sparkle.
The band-limited onsets (``onset_low`` / ``onset_mid`` / ``onset_high``) are not that: a kick's
beater click and pitch sweep reach the mid band, a snare's body sits at 150–300 Hz, and hats and
snare wires share everything above 2 kHz.

Here every frame's *new* energy (the positive frame-to-frame change of the mel magnitude
spectrum, i.e. linear spectral flux, which adds up when two drums hit together) is explained as a
non-negative mix of three fixed spectral shapes (non-negative least squares with the templates
held fixed, Lee & Seung's multiplicative update for the activations only; cf. Dittmar & Gärtner
2014, "Real-time transcription and separation of drum recordings based on NMF decomposition"):

- kick: a body centred near 80 Hz, about an octave wide either side, plus a faint beater click;
- snare: shell modes near 200 Hz plus wire noise spread over 1–10 kHz;
- hats (and cymbals, shakers): noise centred near 9 kHz, nothing below 2 kHz.

The shapes come from the instruments' acoustics, not from a training set; no weights are
downloaded. Written here because no maintained, permissively licensed library does drum
transcription offline: madmom's and ADTLib's models are trained networks with non-commercial
licences and old dependencies, and librosa's NMF (``librosa.decompose``) learns its own components
(tried: unsupervised NMF of a drum stem does not keep kick and snare apart) — fixing the
components and solving for the activations is the few lines below.

Measured by ``benchmarks/drum_parts.py`` against MIDI / sample-placement truth (AUC of a part's
curve at its hits against the other parts' hits without it; mean over items, dev / held):

=====  =====================================  =====================================
part   FluidR3 kit (Freedoom MIDI), dev / held  LMMS + Hydrogen samples, dev / held
=====  =====================================  =====================================
kick   0.987 / 0.986   (bands 0.919 / 0.904)   0.956 / 1.000   (bands 0.892 / 0.915)
snare  0.992 / 0.992   (bands 0.873 / 0.904)   0.878 / 0.899   (bands 0.825 / 0.826)
hats   0.840 / 0.872   (bands 0.625 / 0.629)   0.845 / 0.860   (bands 0.533 / 0.433)
=====  =====================================  =====================================

"bands" are the band-limited onsets a single drums stem had before (< 150 Hz, 150–2000 Hz,
> 2 kHz); on hats they were near blind (0.43–0.63: the snare's wires ring above 2 kHz too).

Tried on the dev halves and not kept: Kullback–Leibler instead of least squares (kick 0.98 → 0.87
on FluidR3), weighting every band by its mean flux (kick 0.98 → 0.78), a kick without its beater
click or with a narrower one (FluidR3 hats 0.77 → 0.69–0.75, measured before the alignment below:
the kicks' clicks land on the hats).
Known limit: least squares favours the loud low bands, so a soft hat struck together with a loud
kick can vanish into the kick (the kick's click template explains its highs); alone it is found.
"""

from __future__ import annotations

import numpy as np

#: Order of the rows :func:`drum_part_onsets` returns, and the curve names they are stored under.
DRUM_PARTS = ("kick", "snare", "hats")
#: Multiplicative-update iterations (the activations of three fixed templates settle in ~30).
PART_ITERATIONS = 50


def part_templates(mel_hz: np.ndarray) -> np.ndarray:
    """The three spectral shapes (mel bands × 3, columns unit-norm) on mel band centres ``mel_hz``.

    Gaussians in log frequency (octaves): a drum's partials and noise spread over octaves, not
    over hertz. Values relative to each shape's peak; the floor keeps every band explainable."""
    octave = np.log2(np.maximum(np.asarray(mel_hz, dtype=np.float64), 20.0))

    def bump(centre_hz: float, width_octaves: float) -> np.ndarray:
        return np.exp(-0.5 * ((octave - np.log2(centre_hz)) / width_octaves) ** 2)

    kick = bump(80.0, 1.0) + 10 ** (-30 / 20) * bump(3500.0, 1.0)  # body + beater click (−30 dB)
    snare = 0.8 * bump(200.0, 0.5) + 0.6 * bump(3000.0, 1.3)  # shell modes + wires
    hats = bump(9000.0, 0.6)
    shapes = np.stack([kick, snare, hats], axis=1) + 1e-3
    return shapes / np.linalg.norm(shapes, axis=0)


def drum_part_onsets(mel_power: np.ndarray, mel_hz: np.ndarray) -> np.ndarray:
    """Per-part onset strength, shape (3, n_frames), ≥ 0, rows in :data:`DRUM_PARTS` order.

    ``mel_power``: mel power spectrogram (bands × frames, centred frames), ``mel_hz`` its band
    centres. Not delayed, unlike ``features``' log-mel flux: the linear flux grows most when a hit
    reaches the middle of the 93-ms window, i.e. on the hit's own frame (the log flux already
    jumps when the window's edge touches it). Measured on the synthetic loop of
    ``tests/test_drum_parts.py``: part peaks 11–20 ms after the hits with the log flux's 3-frame
    delay (a strobe flash then came a video frame late), 2–16 ms before them without, where the
    ``onset`` curve peaks between 15 ms before and 9 ms after them.
    Frame 0 holds what sounds from 0 s."""
    magnitude = np.sqrt(np.maximum(np.asarray(mel_power, dtype=np.float64), 0.0))
    n_frames = magnitude.shape[1]
    # flux[:, t] = new energy between frames t-1 and t; frame 0 is compared with silence
    flux = np.maximum(0.0, np.diff(magnitude, axis=1, prepend=np.zeros((magnitude.shape[0], 1))))
    shapes = part_templates(mel_hz)
    act = np.full((shapes.shape[1], n_frames), float(flux.mean()) + 1e-12)
    wtv = shapes.T @ flux  # fixed across iterations: only the activations move
    wtw = shapes.T @ shapes
    for _ in range(PART_ITERATIONS):
        act *= wtv / (wtw @ act + 1e-12)
    return act

