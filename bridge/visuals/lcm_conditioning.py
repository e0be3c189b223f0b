"""What the LCM engine's frames are conditioned on, per section: text embeddings and initial noise.

Every section prompt (prompt and style; the negative prompt where classifier-free guidance runs) is
encoded once and kept per loaded model. During a section's transition the text embeddings *and*
the initial noise are slerped from the previous section by ``section_mix``; ``prompt_mix`` slerps
toward the next section's prompt. Noise is drawn from CPU generators seeded by (run seed, section
seed, frame index), so a project renders the same video on every run and device; most of it is a
fixed per-section noise (``noise_jitter`` sets the per-frame share), which keeps consecutive img2img
frames from "boiling" while the per-frame part keeps textures alive.

The frame chain that uses them (warp, encode, denoise, decode) is :mod:`bridge.visuals.lcm`.
torch is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bridge.visuals.base import SectionLook
from bridge.visuals.lcm_models import LoadedModel

#: Prompt embeddings kept per loaded model (sections × a few edits; each is 77×768 floats).
PROMPT_CACHE_SIZE = 256


def frame_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence hashing, stable across platforms)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def slerp(a, b, t: float, *, dim: int = -1, eps: float = 1e-7):
    """Spherical interpolation of torch tensors along ``dim`` (per token for text embeddings,
    ``dim=None`` for a whole noise tensor). Falls back to linear where a and b are (anti)parallel.
    Keeps the norm when |a| = |b|, which a linear blend of embeddings or Gaussian noise does not."""
    import torch

    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    a32, b32 = a.float(), b.float()
    if dim is None:
        shape = a32.shape
        a32, b32, d = a32.reshape(1, -1), b32.reshape(1, -1), -1
    else:
        shape, d = None, dim
    na = a32 / a32.norm(dim=d, keepdim=True).clamp_min(eps)
    nb = b32 / b32.norm(dim=d, keepdim=True).clamp_min(eps)
    dot = (na * nb).sum(dim=d, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    safe = sin.abs() > 1e-4
    wa = torch.where(safe, torch.sin((1.0 - t) * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, 1.0 - t))
    wb = torch.where(safe, torch.sin(t * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, t))
    out = wa * a32 + wb * b32
    if shape is not None:
        out = out.reshape(shape)
    return out.to(a.dtype)


def _prompt_text(section: SectionLook | None) -> tuple[str, str]:
    if section is None:
        return "", ""
    text = ", ".join(p for p in (section.prompt.strip(), section.style.strip()) if p)
    return text, section.negative_prompt.strip()


class SectionConditioning:
    """One run's conditioning (see the module docstring): ``model`` is the loaded pipeline (its
    prompt cache is shared by the engines that use it), ``sections`` the run's sections,
    ``run_seed`` :attr:`RenderContext.seed`, ``cfg`` whether classifier-free guidance runs (then
    negative embeddings are made too), ``latent_shape`` (1, C, h, w) of one frame's noise."""

    def __init__(self, model: LoadedModel, sections: Sequence[SectionLook], *, run_seed: int, cfg: bool,
                 latent_shape: tuple[int, int, int, int], noise_jitter: float) -> None:
        self.model = model
        self.sections = tuple(sections)
        self.run_seed = int(run_seed)
        self.cfg = bool(cfg)
        self.latent_shape = latent_shape
        self.noise_jitter = float(noise_jitter)
        self._section_noise: dict[int, Any] = {}

    def section(self, index: int) -> SectionLook | None:
        return self.sections[index] if 0 <= index < len(self.sections) else None

    def section_seed(self, index: int) -> int:
        """The section's own seed (0 outside the sections)."""
        sec = self.section(index)
        return sec.seed if sec is not None else 0

    def forget_noise(self) -> None:
        """Drop the per-section noise (it is drawn again, the same, when next needed)."""
        self._section_noise = {}

    # -- text --------------------------------------------------------------------------------------
    def embeddings(self, section_index: int):
        """(prompt embeds, negative embeds or None), each (1, 77, D) on the device; cached per model."""
        m = self.model
        prompt, negative = _prompt_text(self.section(section_index))
        key = (prompt, negative if self.cfg else "", self.cfg)
        hit = m.prompt_cache.get(key)
        if hit is None:
            import torch

            with torch.inference_mode():
                pos, neg = m.pipe.encode_prompt(prompt, m.device, 1, self.cfg,
                                                negative_prompt=negative if self.cfg else None)
            if len(m.prompt_cache) >= PROMPT_CACHE_SIZE:
                m.prompt_cache.pop(next(iter(m.prompt_cache)))
            hit = m.prompt_cache[key] = (pos, neg if self.cfg else None)
        return hit

    def text(self, section_index: int, section_mix: float, prompt_mix: float):
        """(prompt embeds, negative embeds or None) of a frame: the section's, slerped from the
        previous section's by ``section_mix`` and toward the next one's by ``prompt_mix``."""
        n = len(self.sections)
        if not 0 <= section_index < n:
            section_index = -1
        pos, neg = self.embeddings(section_index)
        if section_index > 0 and section_mix < 1.0:
            p0, n0 = self.embeddings(section_index - 1)
            pos = slerp(p0, pos, section_mix)
            neg = slerp(n0, neg, section_mix) if neg is not None else None
        if prompt_mix > 0.0 and 0 <= section_index < n - 1:
            p1, n1 = self.embeddings(section_index + 1)
            pos = slerp(pos, p1, prompt_mix)
            neg = slerp(neg, n1, prompt_mix) if neg is not None else None
        return pos, neg

    # -- noise -------------------------------------------------------------------------------------
    def generator(self, *parts: int):
        """A CPU torch generator seeded by the run seed and ``parts``."""
        import torch

        return torch.Generator("cpu").manual_seed(frame_seed(self.run_seed, *parts))

    def _noise_of(self, section_index: int, frame_index: int):
        import torch

        sec_seed = self.section_seed(section_index)
        base = self._section_noise.get(section_index)
        if base is None:
            base = torch.randn(self.latent_shape, generator=self.generator(sec_seed, section_index, -1))
            self._section_noise[section_index] = base
        if self.noise_jitter <= 0.0:
            return base
        fresh = torch.randn(self.latent_shape, generator=self.generator(sec_seed, section_index, frame_index))
        return slerp(base, fresh, self.noise_jitter, dim=None)

    def noise(self, section_index: int, section_mix: float, frame_index: int):
        """(1, C, h, w) float32 CPU noise for a frame, slerped across a section transition."""
        noise = self._noise_of(section_index, frame_index)
        if section_index > 0 and section_mix < 1.0:
            noise = slerp(self._noise_of(section_index - 1, frame_index), noise, float(section_mix), dim=None)
        return noise
