"""``frame_at``'s in-between frames: cached keyframes moved by the feedback motion between them and
the instant, colour-corrected to the instant's parameters, and cross-faded by distance.

The maths is the engines' own: each feedback step is
:func:`bridge.visuals.procedural.feedback_matrix`, and a row's colour grade and white flash are
:func:`bridge.visuals.procedural.display_affine` (the procedural and the LCM engine both apply
them), so a change to an engine's maths reaches the preview with no copy to keep in step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bridge.mapping.params import PARAMETER_NAMES
from bridge.preview.plan import PreviewPlan

_ORD_COL = {name: i for i, name in enumerate(PARAMETER_NAMES)}
#: A keyframe's own brightness and saturation count as at least this when its colour grade is undone
#: (a darkened or greyed keyframe has lost what a brighter frame would show: at most 4× is restored).
_MIN_UNDO_GAIN = -0.5


def feedback_steps(values: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Forward 3×3 matrices (n, 3, 3) of each row's feedback step (zoom / rotation / translate),
    each :func:`bridge.visuals.procedural.feedback_matrix` of that row."""
    from bridge.visuals.procedural import feedback_matrix

    v = np.asarray(values, dtype=np.float64)
    zoom, rot = v[:, _ORD_COL["zoom"]], v[:, _ORD_COL["rotation"]]
    tx, ty = v[:, _ORD_COL["translate_x"]], v[:, _ORD_COL["translate_y"]]
    m = np.zeros((v.shape[0], 3, 3))
    m[:, 2, 2] = 1.0
    for n in range(v.shape[0]):
        m[n, :2] = feedback_matrix(width=width, height=height, zoom=float(zoom[n]), rotation_deg=float(rot[n]),
                                   translate_x=float(tx[n]), translate_y=float(ty[n]))
    return m


def cumulative_motion(values: np.ndarray, first: int, last: int, *, width: int, height: int) -> np.ndarray:
    """Forward 3×3 matrix of the feedback motion of rows first … last (inclusive), applied in order."""
    m = np.eye(3)
    for step in feedback_steps(values[first:last + 1], width=width, height=height):
        m = step @ m
    return m


def segment_motion(plan: PreviewPlan, i: int) -> tuple[np.ndarray, np.ndarray]:
    """For the keyframe interval (keyframes[i], keyframes[i+1]]: the forward motion from the first
    keyframe to every frame of it (m, 3, 3), and to the second keyframe. Cached on the plan (every
    frame of the interval needs the prefix up to it; see benchmarks/preview_latency.py)."""
    got = plan.motion_cache.get(i)
    if got is None:
        k0 = int(plan.keyframes[i])
        k1 = int(plan.keyframes[i + 1]) if i + 1 < plan.keyframes.size else plan.n_frames - 1
        steps = feedback_steps(plan.params.values[k0 + 1:k1 + 1], width=plan.width, height=plan.height)
        prefix = np.empty((steps.shape[0] + 1, 3, 3))
        prefix[0] = np.eye(3)
        for n, step in enumerate(steps):
            prefix[n + 1] = step @ prefix[n]
        got = plan.motion_cache[i] = (prefix, prefix[-1])
    return got


def _is_identity(m: np.ndarray) -> bool:
    return bool(np.abs(m[:2, :2] - np.eye(2)).max() < 2e-3 and np.abs(m[:2, 2]).max() < 0.25)


def _display(row: np.ndarray, *, undo: bool) -> np.ndarray:
    """4×4 homogeneous form of the engines' colour grade + flash for a parameter row."""
    from bridge.visuals.procedural import display_affine

    def col(name: str) -> float:
        return float(row[_ORD_COL[name]])

    floor = _MIN_UNDO_GAIN if undo else -1.0
    m = np.eye(4)
    m[:3] = display_affine(hue=col("hue"), saturation=max(floor, col("saturation")),
                           brightness=max(floor, col("brightness")), flash=col("flash"))
    return m


def colour_correction(from_row: np.ndarray, to_row: np.ndarray) -> np.ndarray:
    """3×4 colour matrix turning a frame rendered with ``from_row`` toward ``to_row``'s look: the
    engines' colour grade and white flash of ``from_row`` undone (affine, so exactly invertible),
    then ``to_row``'s applied — so kicks hit on their own frame even between sparse keyframes."""
    return (_display(to_row, undo=False) @ np.linalg.inv(_display(from_row, undo=True)))[:3]


def compose_frame(plan: PreviewPlan, j: int,
                  neighbours: Sequence[tuple[int, np.ndarray] | tuple[int, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Frame ``j`` from one or two keyframe images: each is moved by the feedback motion between
    it and frame j (forward from a keyframe before j, backward from one after), colour-corrected from
    the parameter row it was rendered with (default: the plan's row of that keyframe; a stale
    keyframe of an earlier plan brings its own) to frame j's, then the two are cross-faded by
    distance. ``neighbours``: (keyframe index, image[, its row]). Returns uint8 (h, w, 3)."""
    import cv2

    values = plan.params.values
    w, h = plan.width, plan.height
    prepared = []
    for item in neighbours:
        k, img = item[0], item[1]
        row = item[2] if len(item) > 2 else values[k]
        if k == j:
            motion, inverse_map = np.eye(3), False
        else:
            pos = plan.keyframe_position(k)
            i = pos if k < j else pos - 1  # the interval j lies in
            prefix, whole = segment_motion(plan, i)
            q = prefix[j - int(plan.keyframes[i])]
            if k < j:
                motion, inverse_map = q, False
            else:  # frame j = the later keyframe sampled through the motion j → k
                motion, inverse_map = whole @ np.linalg.inv(q), True
        prepared.append((k, img, row, motion, inverse_map))
    warp = not all(_is_identity(m) for _, _, _, m, _ in prepared)
    layers: list[tuple[int, np.ndarray]] = []
    for k, img, row, motion, inverse_map in prepared:
        out = cv2.transform(img, colour_correction(row, values[j]).astype(np.float32))
        if warp:
            # 4 channels: OpenCV's warpAffine has a vector path for 4-channel uint8 (≈2.5× faster
            # than 3 channels, conversions included).
            out = cv2.cvtColor(out, cv2.COLOR_RGB2RGBA)
            if not _is_identity(motion):
                flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse_map else 0)
                out = cv2.warpAffine(out, motion[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        layers.append((abs(j - k), out))
    if len(layers) == 1:
        out = layers[0][1]
    else:
        (da, a), (db, b) = layers
        out = cv2.addWeighted(a, db / float(da + db), b, da / float(da + db), 0.0)
    if out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    return out
