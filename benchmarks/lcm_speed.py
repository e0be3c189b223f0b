"""LCM engine speed: seconds per frame (CPU) / frames per second (GPU), and the engine's overhead.

The real Stable Diffusion 1.5 UNet architecture (860 M parameters, plus LCM's guidance embedding,
``time_cond_proj_dim=256``), the SD VAE and TAESD (AutoencoderTiny) with *random* weights, built
from their configs without downloading anything: speed does not depend on the weight values.

For every size × steps × decoder it renders chained img2img frames through ``LCMEngine.render``
(warp → encode → noise → steps × UNet → decode → post) and, alternating with them, "bare" frames that
run only the model work (encode, the same UNet steps and scheduler updates, decode, uint8 out):
paired overhead = engine / bare − 1 (goal ≤ 5 %). On a CPU shared with other jobs that ratio is
noisy, so the engine's extra work is also measured directly: time outside the UNet / VAE forward
calls (forward hooks) in an engine frame minus the same in a bare frame, as ms and as % of the bare
frame. A probe with a tiny model at the real latent shapes measures that extra work over many
frames: the number to hold against a GPU frame budget (25 ms at 40 fps).

    python benchmarks/lcm_speed.py                      # CPU: 256² and 512², 1/2/4 steps, tiny + full
    python benchmarks/lcm_speed.py --sizes 256 --steps 1 2 --json
    python benchmarks/lcm_speed.py --device cuda --dtype float16 --frames 30
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # lcm_tiny.write_tokenizer: the hand-written CLIP vocabulary

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, time_cond_proj_dim=256,
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
              max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=1, pad_token_id=1)
# The same architecture shrunk to (almost) nothing but with SD's ×8 VAE and 4×(s/8)² latents, so the
# engine's own work (warp, noise, conditioning, conversions, post) is measured at the real shapes.
PROBE_UNET = dict(SD15_UNET, block_out_channels=(8, 8, 8, 8), layers_per_block=1, cross_attention_dim=32,
                  attention_head_dim=2, norm_num_groups=4, time_cond_proj_dim=8,
                  down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4)
PROBE_VAE = dict(SD_VAE, block_out_channels=(4, 4, 4, 4), layers_per_block=1, norm_num_groups=2)
PROBE_CLIP = dict(CLIP_L, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1)

PARAMS = {"zoom": 0.02, "rotation": 0.5, "translate_x": 0.003, "hue": 0.05, "strength": 0.15}


def build_pipeline(unet_cfg, vae_cfg, clip_cfg, *, device, dtype):
    """An LCM pipeline with random weights, and a TAESD-shaped AutoencoderTiny (or a probe one)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoencoderTiny,
        LatentConsistencyModelPipeline,
        LCMScheduler,
        UNet2DConditionModel,
    )
    from lcm_tiny import write_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    probe = unet_cfg is PROBE_UNET
    tiny = (AutoencoderTiny(encoder_block_out_channels=(4,) * 4, decoder_block_out_channels=(4,) * 4)
            if probe else AutoencoderTiny())  # AutoencoderTiny() is TAESD's configuration
    pipe = LatentConsistencyModelPipeline(
        vae=AutoencoderKL(**vae_cfg), text_encoder=CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **clip_cfg)),
        tokenizer=tokenizer, unet=UNet2DConditionModel(**unet_cfg),
        scheduler=LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(device, dtype)
    return pipe, tiny.to(device, dtype).eval().requires_grad_(False)


def bare_frame(pipe, coder, image: np.ndarray, *, steps: int, strength: float, embeds, w_emb, noise):
    """The model work of one img2img frame and nothing else; returns uint8 (h, w, 3)."""
    import torch
    from diffusers import AutoencoderTiny

    sched, dev, dt = pipe.scheduler, pipe.unet.device, pipe.unet.dtype
    tiny = isinstance(coder, AutoencoderTiny)
    with torch.inference_mode():
        x = torch.from_numpy(image).to(dev).permute(2, 0, 1)[None].to(dt) / 127.5 - 1.0
        z = coder.encode(x, return_dict=False)[0]
        z = (z if tiny else z.mode()) * coder.config.scaling_factor
        sched.set_timesteps(steps, device=dev, strength=strength)
        ts = sched.timesteps
        lat = sched.add_noise(z, noise, ts[:1])
        den = lat
        for t in ts:
            pred = pipe.unet(lat, t, encoder_hidden_states=embeds, timestep_cond=w_emb, return_dict=False)[0]
            lat, den = sched.step(pred, t, lat, return_dict=False)
        img = coder.decode(den / coder.config.scaling_factor, return_dict=False)[0]
        img = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return img[0].permute(1, 2, 0).cpu().numpy()


class ModelClock:
    """Seconds spent inside the model's forward calls (UNet, VAE / TAESD encoder and decoder), via
    forward hooks; what an engine frame spends outside them is the engine's own work. CPU only: on
    a GPU the calls return before the kernels finish, so there the paired comparison is the measure."""

    def __init__(self, modules) -> None:
        self.seconds, self.enabled, self._depth, self._t0 = 0.0, False, 0, 0.0
        self._handles = []
        for m in modules:
            self._handles.append(m.register_forward_pre_hook(self._enter))
            self._handles.append(m.register_forward_hook(self._leave))

    def _enter(self, *_):
        if self.enabled:
            if self._depth == 0:
                self._t0 = time.perf_counter()
            self._depth += 1

    def _leave(self, *_):
        if self.enabled:
            self._depth -= 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - self._t0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def measure(pipe, tiny, *, size: int, steps: int, decoder: str, frames: int, warmup: int) -> dict:
    """Alternate engine and bare img2img frames; seconds per frame of each (median)."""
    import torch

    from bridge.visuals.base import RenderContext, SectionLook
    from bridge.visuals.lcm import LCMEngine

    use_tiny = decoder == "tiny"
    engine = LCMEngine.from_pipe(
        pipe, tiny_vae=tiny if use_tiny else False, steps=steps, preview_steps=steps, base_strength=0.5,
        keyframe_strength=0.5, keyframe_every_frames=1, preview_long_side=size, guidance_scale=8.0)
    sections = (SectionLook(0.0, 60.0, "a", prompt="a lighthouse in a storm, oil painting", seed=1),)
    engine.start(RenderContext(size, size, Fraction(30), sections, seed=0, mode="preview" if use_tiny else "export"))
    rng = np.random.default_rng(0)
    start_image = cv2_blur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    engine.resume_from(start_image, section_index=0)
    coder = tiny if use_tiny else pipe.vae
    embeds = engine._cond.embeddings(0)[0]
    w_emb = engine._w_embedding
    strength = min(1.0, engine.base_strength + PARAMS["strength"])
    f = pipe.vae_scale_factor
    noise = torch.randn((1, 4, size // f, size // f), generator=torch.Generator().manual_seed(0)).to(
        pipe.unet.device, pipe.unet.dtype)
    prev = start_image
    t_engine, t_bare, side_engine, side_bare = [], [], [], []
    clock = ModelClock([pipe.unet, coder.encoder, coder.decoder]
                       + ([] if use_tiny else [pipe.vae.quant_conv, pipe.vae.post_quant_conv]))
    clock.enabled = True
    for k in range(warmup + frames):
        clock.seconds = 0.0
        t0 = time.perf_counter()
        out = engine.render(k + 1, PARAMS, 0, 1.0)
        t1 = time.perf_counter()
        model_engine, clock.seconds = clock.seconds, 0.0
        prev = bare_frame(pipe, coder, prev, steps=steps, strength=strength, embeds=embeds, w_emb=w_emb, noise=noise)
        t2 = time.perf_counter()
        if k >= warmup:
            t_engine.append(t1 - t0)
            t_bare.append(t2 - t1)
            side_engine.append(t1 - t0 - model_engine)
            side_bare.append(t2 - t1 - clock.seconds)
    clock.remove()
    assert out.shape == (size, size, 3)
    engine.close()
    e, b = statistics.median(t_engine), statistics.median(t_bare)
    r = {"size": size, "steps": steps, "decoder": decoder, "frames": frames,
         "engine_s_per_frame": round(e, 4), "bare_s_per_frame": round(b, 4), "engine_fps": round(1 / e, 3),
         "paired_overhead_pct": round(100 * (e / b - 1), 2)}
    if pipe.unet.device.type == "cpu":
        # What the engine does beyond the bare loop, timed outside the model's forward calls (the
        # bare loop's own conversions and scheduler updates are subtracted): robust to a busy CPU.
        extra = statistics.median(side_engine) - statistics.median(side_bare)
        model = e - statistics.median(side_engine)
        r["engine_extra_ms"] = round(1000 * extra, 2)
        r["engine_extra_pct"] = round(100 * extra / (model + statistics.median(side_bare)), 3)
    return r


def warm(pipe, coder, size: int) -> None:
    import torch

    f = pipe.vae_scale_factor
    embeds = torch.zeros((1, 77, pipe.text_encoder.config.hidden_size), device=pipe.unet.device, dtype=pipe.unet.dtype)
    w_emb = torch.zeros((1, pipe.unet.config.time_cond_proj_dim), device=pipe.unet.device, dtype=pipe.unet.dtype)
    noise = torch.zeros((1, 4, size // f, size // f), device=pipe.unet.device, dtype=pipe.unet.dtype)
    bare_frame(pipe, coder, np.zeros((size, size, 3), np.uint8), steps=1, strength=0.5, embeds=embeds,
               w_emb=w_emb, noise=noise)


def cv2_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--decoders", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    ap.add_argument("--frames", type=int, default=None,
                    help="measured frames per configuration (default: GPU 30; CPU 2 at ≤256², 1 above)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured frames first (default: GPU 3, CPU 0)")
    ap.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    ap.add_argument("--dtype", default=None, help="float16, bfloat16 or float32 (default: fp16 on GPU, fp32 on CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--no-probe", action="store_true", help="skip the engine-only overhead probe")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress: stderr)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)

    import torch

    from bridge.visuals.models import choose_device, torch_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype_name = choose_device(device=args.device, dtype=args.dtype)
    dtype = torch_dtype(dtype_name)
    gpu = device != "cpu"
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.quiet else (lambda *a: None)
    result = {"device": device, "dtype": dtype_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(),
              "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None, "runs": []}

    if not args.no_probe:
        probe, probe_tiny = build_pipeline(PROBE_UNET, PROBE_VAE, PROBE_CLIP, device=device, dtype=dtype)
        probes = []
        for size in args.sizes:
            for decoder in args.decoders:
                r = measure(probe, probe_tiny, size=size, steps=4, decoder=decoder, frames=20, warmup=3)
                probes.append({"size": size, "decoder": decoder, "engine_ms": round(1000 * r["engine_s_per_frame"], 2),
                               "bare_ms": round(1000 * r["bare_s_per_frame"], 2),
                               "engine_extra_ms": r.get("engine_extra_ms")})
                say(f"probe {size}² {decoder:>4}: engine's extra work {r.get('engine_extra_ms', float('nan')):.2f} ms "
                    f"per frame (tiny model at the real latent shape: {probes[-1]['engine_ms']:.0f} ms engine, "
                    f"{probes[-1]['bare_ms']:.0f} ms bare)")
        result["engine_side_probe"] = probes

    t0 = time.perf_counter()
    pipe, tiny = build_pipeline(SD15_UNET, SD_VAE, CLIP_L, device=device, dtype=dtype)
    result["build_s"] = round(time.perf_counter() - t0, 1)
    say(f"SD 1.5 UNet ({sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.0f} M parameters, random) "
        f"on {device} {dtype_name}, {torch.get_num_threads()} threads; built in {result['build_s']} s")
    for size in args.sizes:
        for decoder in args.decoders:
            # One unmeasured model frame per shape first: oneDNN / cuDNN pick and cache their kernels on
            # the first call, which would otherwise land on whichever of engine / bare runs first.
            warm(pipe, tiny if decoder == "tiny" else pipe.vae, size)
            for steps in args.steps:
                frames = args.frames or (30 if gpu else (2 if size <= 256 else 1))
                warmup = args.warmup if args.warmup is not None else (3 if gpu else 0)
                r = measure(pipe, tiny, size=size, steps=steps, decoder=decoder, frames=frames, warmup=warmup)
                result["runs"].append(r)
                say(f"{size}² {steps} step{'s' if steps > 1 else ' '} {decoder:>4} decoder: "
                    f"{r['engine_s_per_frame']:8.3f} s/frame ({r['engine_fps']:7.2f} fps), bare "
                    f"{r['bare_s_per_frame']:8.3f} s (paired {r['paired_overhead_pct']:+6.2f} %)"
                    + (f", engine extra {r['engine_extra_ms']:.1f} ms = {r['engine_extra_pct']:.3f} %"
                       if "engine_extra_ms" in r else ""))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
