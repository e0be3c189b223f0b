"""The LCM engine on the real diffusers code path, offline: tiny random models built from configs,
saved with ``save_pretrained`` and loaded back through bridge.visuals.models / bridge.visuals.lcm.

Independent truths: pixel shifts of a known size, procedural.warp_feedback (the feedback the engine
must reuse), CLIP embeddings computed here with transformers directly, diffusers' own LCMScheduler
for the step rules, UNet forward hooks for "how many steps ran", and PyAV decoding of the video.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from lcm_tiny import build_tiny_lcm, build_tiny_sd  # noqa: E402

from bridge.errors import BridgeError, Cancelled, RenderError  # noqa: E402
from bridge.jobs import CancelToken  # noqa: E402
from bridge.visuals import RenderContext, SectionLook, get_engine  # noqa: E402
from bridge.visuals.lcm import FrameJob, LCMEngine, img2img_plan, working_size  # noqa: E402
from bridge.visuals.models import (  # noqa: E402
    ModelNotAvailable,
    choose_device,
    list_local_models,
    resolve_model,
    select_repo_files,
)
from bridge.visuals.procedural import flash_affine, warp_feedback  # noqa: E402

SECTIONS = (
    SectionLook(start_s=0.0, end_s=1.0, name="verse", prompt="a red cat on the mat", seed=11),
    SectionLook(start_s=1.0, end_s=2.0, name="chorus", prompt="the blue ocean at night", seed=22,
                transition_seconds=0.5),
    SectionLook(start_s=2.0, end_s=3.0, name="drop", prompt="green neon city", seed=33),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(LCM folder, TAESD folder, plain-SD folder), built once. Torch runs single-threaded here: on
    a 2-core runner two threads make these tiny convolutions ~6× slower (thread hand-off dominates)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    lcm = build_tiny_lcm(root / "tiny-lcm")
    sd = build_tiny_sd(root / "tiny-sd-turbo")
    yield lcm, root / "tiny-lcm-taesd", sd
    torch.set_num_threads(threads)


def ctx(mode="export", size=64, seed=5, sections=SECTIONS):
    return RenderContext(width=size, height=size, fps=Fraction(30), sections=sections, seed=seed, mode=mode)


def engine(tiny, **settings) -> LCMEngine:
    settings.setdefault("model", str(tiny[0]))
    settings.setdefault("tiny_vae", False)
    settings.setdefault("steps", 2)
    return get_engine("lcm", **settings)


class Counter:
    """Counts forward calls of a torch module (a UNet step, a decoder pass)."""

    def __init__(self, module):
        self.n = 0
        self._h = module.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.n += 1

    def remove(self):
        self._h.remove()


def clip_embedding(folder: Path, prompt: str) -> np.ndarray:
    """CLIP text embedding (77, D) computed with transformers directly (not through the engine)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    enc = CLIPTextModel.from_pretrained(folder / "text_encoder")
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return enc(ids.input_ids)[0][0].numpy()


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-token angle (radians) between two (tokens, D) arrays."""
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1, 1))


# --- no torch on import, pure rules ---------------------------------------------------------------

def test_importing_the_engine_modules_imports_no_torch():
    code = ("import sys, bridge, bridge.visuals, bridge.visuals.lcm, bridge.visuals.models, "
            "bridge.visuals.models_cli\n"
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'huggingface_hub') if m in sys.modules]\n"
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
@pytest.mark.parametrize("strength", [0.01, 0.03, 0.05, 0.1, 0.35, 0.6, 1.0])
def test_lcm_step_plan_matches_the_lcm_scheduler(steps, strength):
    """The plan's evaluations = what LCMScheduler.set_timesteps produces for the planned step count;
    zero exactly where diffusers would refuse (original_steps × strength < 1)."""
    from diffusers import LCMScheduler

    run, _ = img2img_plan("lcm", steps=steps, strength=strength)
    sched = LCMScheduler(original_inference_steps=50)
    if int(50 * strength) < 1:
        assert run == 0
        with pytest.raises(ValueError):
            sched.set_timesteps(1, strength=strength)
        return
    assert 1 <= run <= steps
    sched.set_timesteps(run, strength=strength)
    assert len(sched.timesteps) == run
    # every timestep lies inside the strength's share of the 1000 training steps
    assert int(sched.timesteps.max()) < 1000 * strength
    if run < steps:  # capped: one more step is what diffusers refuses
        with pytest.raises(ValueError):
            LCMScheduler(original_inference_steps=50).set_timesteps(run + 1, strength=strength)


def test_turbo_plan_keeps_at_least_one_step():
    assert img2img_plan("turbo", steps=1, strength=0.35) == (1, (3, 1))  # n × strength ≥ 1
    assert img2img_plan("turbo", steps=2, strength=0.5) == (1, (2, 1))
    assert img2img_plan("turbo", steps=4, strength=1.0) == (4, (4, 4))
    assert img2img_plan("turbo", steps=1, strength=0.0)[0] == 0
    assert img2img_plan("turbo", steps=1, strength=0.01)[0] == 0  # would need > 50 steps


def test_working_size():
    assert working_size(1280, 720, long_side=384, multiple=8) == (384, 216)
    assert working_size(64, 64, long_side=384, multiple=8) == (64, 64)  # never upscaled
    assert working_size(1280, 720, long_side=None, multiple=8) == (1280, 720)
    assert working_size(1366, 768, long_side=None, multiple=8) == (1368, 768)


# --- model files: offline, clear errors --------------------------------------------------------

def test_missing_model_names_the_pull_command(tmp_path):
    with pytest.raises(ModelNotAvailable, match=r"stembridge models pull nobody/not-a-model") as e:
        resolve_model("nobody/not-a-model", cache_dir=tmp_path)
    assert e.value.model == "nobody/not-a-model"
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        resolve_model(str(tmp_path / "no" / "such" / "folder"), cache_dir=tmp_path)
    with pytest.raises(RenderError, match="--model"):
        get_engine("lcm")


def test_incomplete_folder_names_what_is_missing(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny[0], broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelNotAvailable, match=r"unet/ weights"):
        engine(tiny, model=str(broken))
    with pytest.raises(ModelNotAvailable, match="tiny autoencoder"):
        engine(tiny, tiny_vae=str(tmp_path / "nope"))


def test_plain_sd_without_lora_explains_the_choices(tiny, tmp_path):
    plain = tmp_path / "tiny-sd"
    shutil.copytree(tiny[2], plain)
    with pytest.raises(RenderError, match=r"\+latent-consistency/lcm-lora-sdv1-5"):
        engine(tiny, model=str(plain))


def test_accepts_the_project_engine_settings(tiny):
    """stembridge.json's engine block can be passed as is (as ProceduralEngine accepts it)."""
    from bridge.project.schema import EngineSettings

    settings = EngineSettings(name="lcm", model=str(tiny[0]), steps=3, guidance_scale=6.0).model_dump(exclude={"name"})
    e = get_engine("lcm", **settings)
    assert (e.family, e.steps, e.guidance_scale) == ("lcm", 3, 6.0)
    with pytest.raises(RenderError, match="more than the 50 steps"):
        get_engine("lcm", model=str(tiny[0]), steps=51)


def test_unset_guidance_survives_a_save_as_the_models_recommended_value(tiny):
    """A saved project holds every engine field; an unset guidance must still mean "the model's
    own" (an LCM's guidance embedding was distilled around 8; a plain 1.0 washes it out)."""
    import json

    from bridge.project.schema import EngineSettings

    saved = json.loads(json.dumps(EngineSettings(name="lcm", model=str(tiny[0])).model_dump(mode="json")))
    settings = EngineSettings.model_validate(saved).model_dump(exclude={"name"})
    e = get_engine("lcm", **settings)
    assert e.family == "lcm" and e.guidance_scale == 8.0  # the LCM paper's / pipeline's default


def fake_hf_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """The Hugging Face cache layout (models--org--name/refs/main → snapshots/<commit>/…)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


def test_hugging_face_cache_is_found_offline(tiny, tmp_path):
    snapshot = fake_hf_cache(tmp_path / "hub", "tiny/lcm-model", tiny[0])
    assert resolve_model("tiny/lcm-model", cache_dir=tmp_path / "hub") == snapshot
    e = engine(tiny, model="tiny/lcm-model", cache_dir=str(tmp_path / "hub"))
    e.start(ctx())
    assert e.render(0, {}, 0, 1.0).shape == (64, 64, 3)
    listed = {m.model_id: m for m in list_local_models(cache_dir=tmp_path / "hub")}
    assert listed["tiny/lcm-model"].kind == "lcm" and listed["tiny/lcm-model"].path == snapshot


def test_pull_selects_one_copy_of_the_weights():
    sd15 = ["model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors", "README.md",
            "feature_extractor/preprocessor_config.json", "safety_checker/config.json",
            "safety_checker/model.safetensors", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
            "text_encoder/pytorch_model.bin", "tokenizer/merges.txt", "tokenizer/vocab.json",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
            "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert select_repo_files(sd15) == sorted([
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/vocab.json",
        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors"])  # only the fp16 copy exists for vae
    lora = ["README.md", "pytorch_lora_weights.safetensors", "image.png"]
    assert select_repo_files(lora) == ["pytorch_lora_weights.safetensors"]


def test_device_choice_and_overrides():
    assert choose_device(device="cpu") == ("cpu", "float32")
    assert choose_device(device="cpu", dtype="bf16") == ("cpu", "bfloat16")
    if not torch.cuda.is_available():
        assert choose_device() == ("cpu", "float32")
        with pytest.raises(RenderError, match="not available"):
            choose_device(device="cuda")
    with pytest.raises(RenderError, match="dtype"):
        choose_device(dtype="int8")


def test_models_cli_pull_and_list(tiny, tmp_path, capsys):
    import argparse

    from bridge.visuals.models_cli import add_models_parser

    parser = argparse.ArgumentParser(prog="stembridge")
    add_models_parser(parser.add_subparsers(dest="command"))
    fake_hf_cache(tmp_path / "hub", "tiny/lcm-model", tiny[0])

    args = parser.parse_args(["models", "pull", str(tiny[0])])  # a folder: nothing to download
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tiny[0].resolve())

    args = parser.parse_args(["models", "list", "--json", "--cache-dir", str(tmp_path / "hub")])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(m["id"], m["kind"]) for m in out["downloaded"]] == [("tiny/lcm-model", "lcm")]
    assert {k["id"] for k in out["known"]} >= {"SimianLuo/LCM_Dreamshaper_v7", "madebyollin/taesd"}
    assert not any(k["downloaded"] for k in out["known"])

    args = parser.parse_args(["models", "pull", "not a valid id!"])
    with pytest.raises(BridgeError, match="neither an existing folder nor a Hugging Face id"):
        args.func(args)


# --- frames ------------------------------------------------------------------------------------

def run(e: LCMEngine, n: int, *, params=None, start=0):
    """Render frames start..start+n-1: section 0 for frames < 30, section 1 after, with its
    transition over 15 frames (0.5 s at 30 fps), like FrameParams would give."""
    frames = []
    for f in range(start, start + n):
        sec, mix = (0, 1.0) if f < 30 else (1, min(1.0, (f - 30) / 15))
        p = {"zoom": 0.03 * np.sin(f), "rotation": 2.0, "strength": 0.2 * (f % 3 == 0)}
        p.update(params or {})
        frames.append(e.render(f, p, sec, mix))
    return np.stack(frames)


def test_same_project_renders_identical_frames(tiny):
    a, b = engine(tiny), engine(tiny)
    a.start(ctx())
    b.start(ctx())
    fa, fb = run(a, 8, start=26), run(b, 8, start=26)  # crosses into the chorus transition
    np.testing.assert_array_equal(fa, fb)
    assert fa.shape == (8, 64, 64, 3) and fa.dtype == np.uint8
    assert np.abs(np.diff(fa.astype(int), axis=0)).mean() > 1  # it is a moving picture
    c = engine(tiny)
    c.start(ctx(seed=6))  # another run seed: other noise, other frames
    assert np.abs(run(c, 3, start=26).astype(int) - fa[:3]).mean() > 5


def test_strength_zero_returns_the_warped_previous_frame(tiny):
    e = engine(tiny, base_strength=0.0, keyframe_every_frames=1000)
    e.start(ctx())
    f0 = e.render(1, {}, 0, 1.0)
    f1 = e.render(2, {"translate_x": 0.125}, 0, 1.0)  # 8 px right on a 64 px frame
    np.testing.assert_array_equal(f1[:, 8:], f0[:, :56])
    f2 = e.render(3, {"zoom": 0.1, "rotation": 5.0}, 0, 1.0)
    np.testing.assert_array_equal(f2, warp_feedback(f1, zoom=0.1, rotation_deg=5.0))
    # flash lifts the displayed frame toward white (post only: the chain stays clean)
    f3 = e.render(4, {"flash": 1.0}, 0, 1.0)
    alpha, beta = flash_affine(1.0)  # the white flash the procedural engine applies too
    assert beta > 0
    np.testing.assert_allclose(f3.astype(float), f2 * alpha + beta, atol=1.0)
    np.testing.assert_array_equal(e.render(5, {}, 0, 1.0), f2)


def test_higher_strength_changes_more(tiny):
    """Measured in latent space against the VAE encoding of the input frame, computed here: with
    random weights the VAE round trip alone scrambles pixels, so pixel change says nothing."""
    last = {}
    e = engine(tiny, steps=4, callback_on_step_end=lambda eng, i, t, d: last.update(denoised=d["denoised"].clone()))
    e.start(ctx())
    init = e.render(0, {}, 0, 1.0)
    vae = e.pipeline.vae
    with torch.no_grad():
        x = torch.from_numpy(init).permute(2, 0, 1)[None].float() / 127.5 - 1
        z0 = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    strengths = [0.1, 0.3, 0.6, 0.95]
    change = np.zeros(len(strengths))
    for frame in (3, 4, 5):
        for k, s in enumerate(strengths):
            e.render_batch([FrameJob(frame, {}, 0, 1.0, init_rgb=init, strength=s)])
            change[k] += float((last["denoised"] - z0).abs().mean())
    assert np.all(np.diff(change) > 0), change
    assert change[0] > 0


def test_render_batch_matches_single_frames_in_fewer_unet_calls(tiny):
    e = engine(tiny, steps=2)
    e.start(ctx())
    init = e.render(0, {}, 0, 1.0)
    jobs = [FrameJob(7, {"strength": 0.1}, 0, 1.0, init_rgb=init),
            FrameJob(8, {"prompt_mix": 0.5, "strength": 0.1}, 1, 0.4, init_rgb=warp_feedback(init, zoom=0.05)),
            FrameJob(9, {}, 1, 1.0),                       # text-to-image
            FrameJob(10, {}, 2, 1.0, init_rgb=init, strength=1.0)]  # same schedule as text-to-image
    count = Counter(e.pipeline.unet)
    single = [e.render_batch([j])[0] for j in jobs]
    n_single = count.n
    count.n = 0
    batched = e.render_batch(jobs)
    count.remove()
    assert n_single == 4 * 2
    assert count.n == 2 * 2  # two schedules (strength 0.45; 1.0 shared by the last two), 2 steps each
    for s, b in zip(single, batched, strict=True):
        np.testing.assert_allclose(b.astype(int), s.astype(int), atol=2)


def test_section_boundary_blends_the_text_embeddings_continuously(tiny):
    e = engine(tiny)
    e.start(ctx())
    a = clip_embedding(tiny[0], SECTIONS[0].prompt)
    b = clip_embedding(tiny[0], SECTIONS[1].prompt)
    c = clip_embedding(tiny[0], SECTIONS[2].prompt)
    np.testing.assert_allclose(e.prompt_embedding(1, 0.0), a, atol=1e-5)
    np.testing.assert_allclose(e.prompt_embedding(1, 1.0), b, atol=1e-5)
    theta = angle(a, b)
    moving = theta > 1e-3  # tokens that differ between the prompts (padding beyond both may not)
    for mix in np.linspace(0, 1, 11):
        emb = e.prompt_embedding(1, float(mix))
        # slerp: constant angular speed per token, norms kept between the two
        np.testing.assert_allclose(angle(a, emb)[moving], mix * theta[moving], atol=2e-3)
    # prompt_mix slerps toward the next section's prompt
    np.testing.assert_allclose(e.prompt_embedding(1, 1.0, prompt_mix=1.0), c, atol=1e-5)
    half = e.prompt_embedding(1, 1.0, prompt_mix=0.5)
    np.testing.assert_allclose(angle(b, half), angle(half, c), atol=2e-3)

    # …and the frames across the boundary are conditioned on exactly that, step by step
    used = []
    e2 = engine(tiny, callback_on_step_end=lambda eng, i, t, d: used.append(d["prompt_embeds"][0].numpy().copy()))
    e2.start(ctx())
    run(e2, 20, start=28)  # frames 28..47: verse, then the 15-frame transition into the chorus
    per_frame = np.stack(used[::2])  # 2 steps per frame: one conditioning per frame
    dist = np.linalg.norm(per_frame - a, axis=(1, 2))
    assert np.allclose(dist[:3], 0, atol=1e-4)        # frames 28, 29, 30 (mix 0): the verse
    assert np.all(np.diff(dist[2:18]) > 0)            # rising through the transition
    np.testing.assert_allclose(per_frame[-1], b, atol=1e-5)
    steps = np.linalg.norm(np.diff(per_frame[2:18], axis=0), axis=(1, 2))
    assert steps.max() < 1.5 * steps.mean()           # no jump: evenly spread over the transition


def test_cancel_stops_within_one_step(tiny):
    token = CancelToken()
    e = engine(tiny, steps=4, cancel=token,
               callback_on_step_end=lambda eng, i, t, d: token.cancel() if i == 0 else None)
    e.start(ctx())
    count = Counter(e.pipeline.unet)
    with pytest.raises(Cancelled):
        e.render(0, {}, 0, 1.0)
    assert count.n == 1  # four steps were planned; the one running when cancelled finished, no more

    count.n = 0
    e2 = engine(tiny, steps=4)
    e2.start(ctx())
    e2.render(0, {}, 0, 1.0)
    count.n = 0
    e2.cancel()  # e.g. from the GUI thread between frames
    with pytest.raises(Cancelled):
        e2.render(1, {}, 0, 1.0)
    assert count.n == 0
    e2.start(ctx())  # a new run is not cancelled
    e2.render(0, {}, 0, 1.0)
    assert count.n == 4
    count.remove()


def test_preview_renders_keyframes_only_with_the_tiny_decoder(tiny):
    e = engine(tiny, tiny_vae=str(tiny[1]), keyframe_every_frames=4, preview_steps=1, preview_long_side=64)
    e.start(ctx(mode="preview"))
    assert e.tiny_vae is not None
    unet, tiny_dec, vae_dec = Counter(e.pipeline.unet), Counter(e.tiny_vae.decoder), Counter(e.pipeline.vae.decoder)
    frames = [e.render(f, {"zoom": 0.05}, 0, 1.0) for f in range(8)]
    assert (unet.n, tiny_dec.n, vae_dec.n) == (2, 2, 0)  # keyframes 0 and 4, one step each
    for f in (1, 2, 3, 5, 6, 7):  # in-between: the previous frame, warped
        np.testing.assert_array_equal(frames[f], warp_feedback(frames[f - 1], zoom=0.05))
    for c in (unet, tiny_dec, vae_dec):
        c.remove()
    big = engine(tiny, tiny_vae=str(tiny[1]))
    big.start(replace(ctx(mode="preview"), width=768, height=432))
    assert big.working_size == (384, 216)
    assert big.render(0, {}, 0, 1.0).shape == (432, 768, 3)


def test_sd_turbo_family_runs_euler_ancestral(tiny):
    from diffusers import EulerAncestralDiscreteScheduler

    e = engine(tiny, model=str(tiny[2]), steps=1)  # folder name says turbo
    e.start(ctx())
    assert e.family == "turbo" and e.guidance_scale == 0.0
    assert isinstance(e.pipeline.scheduler, EulerAncestralDiscreteScheduler)
    count = Counter(e.pipeline.unet)
    a = run(e, 3)
    assert count.n == 3  # 1 step each: txt2img, then strength 0.35 → ceil(1/0.35) = 3-step schedule, 1 run
    e.start(ctx())
    np.testing.assert_array_equal(run(e, 3), a)
    count.remove()


def test_lcm_lora_is_fused_into_the_unet(tiny, tmp_path):
    pytest.importorskip("peft")
    from lcm_tiny import build_tiny_lora

    lora = build_tiny_lora(tiny[2], tmp_path / "lora")
    plain = engine(tiny, model=str(tiny[2]), family="lcm")
    fused = engine(tiny, model=f"{tiny[2]}+{lora}")
    assert fused.family == "lcm-lora"
    plain.start(ctx())
    fused.start(ctx())
    w_plain = dict(plain.pipeline.unet.named_parameters())
    w_fused = dict(fused.pipeline.unet.named_parameters())
    assert set(w_plain) == set(w_fused)  # fused and unloaded: no adapter layers left at run time
    name = next(n for n in w_plain if n.endswith("attn1.to_q.weight"))
    assert not torch.equal(w_plain[name], w_fused[name])
    assert np.abs(run(plain, 2).astype(int) - run(fused, 2)).mean() > 1


def test_render_command_writes_a_video_with_audio(tiny, tmp_path):
    """render_project(engine_name="lcm", model=FOLDER) end to end on a 2 s cut of the demo song."""
    import av

    from bridge.analysis.project import analyze_project
    from bridge.demo.song import generate_demo_song, write_demo_stems
    from bridge.export.render import render_project
    from bridge.project import Section, load_project
    from bridge.project.create import new_project

    song = generate_demo_song(sample_rate=22050)
    n = int(2.0 * song.sample_rate)
    write_demo_stems(replace(song, stems={k: v[:, :n] for k, v in song.stems.items()}), tmp_path / "stems")
    new_project(tmp_path / "project", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "project")
    project = project.model_copy(update={"sections": [
        Section(name="intro", start=0, end=1.0, prompt="a red cat", seed=1),
        Section(name="drop", start=1.0, prompt="the blue ocean", seed=2, transition_beats=1)]})
    analysis = analyze_project(project, project_dir)
    out = render_project(project, project_dir, tmp_path / "lcm.mp4", analysis=analysis, width=64, height=64,
                         fps=15, engine_name="lcm", model=str(tiny[0]))
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video)])
    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1)
        rate = c.streams.audio[0].rate
    assert frames.shape == (30, 64, 64, 3)
    assert abs(audio.shape[1] / rate - 2.0) < 1 / 15 and np.abs(audio).max() > 0.05
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1  # moving pictures, not a still


def test_pickled_weights_are_refused_unless_the_user_opts_in(tmp_path, monkeypatch):
    """.bin weights can run code when unpickled: safetensors only, unless STEMBRIDGE_ALLOW_PICKLE_WEIGHTS."""
    from diffusers import LatentConsistencyModelPipeline

    from bridge.visuals import lcm_models as lcm_module

    src = build_tiny_lcm(tmp_path / "safe")
    pickled = tmp_path / "pickled"
    LatentConsistencyModelPipeline.from_pretrained(src).save_pretrained(pickled, safe_serialization=False)
    assert list((pickled / "unet").glob("*.bin")) and not list((pickled / "unet").glob("*.safetensors"))
    monkeypatch.delenv(lcm_module.PICKLE_OPT_IN_ENV, raising=False)
    ctx = RenderContext(64, 64, Fraction(30), (SectionLook(0.0, 10.0, "a", prompt="x"),), seed=0)
    with pytest.raises(RenderError, match="STEMBRIDGE_ALLOW_PICKLE_WEIGHTS=1"):
        engine((pickled, None, None), model=str(pickled)).start(ctx)
    monkeypatch.setenv(lcm_module.PICKLE_OPT_IN_ENV, "1")
    e = engine((pickled, None, None), model=str(pickled))
    e.start(ctx)  # loads the pickled weights now that the user opted in
    assert e.render(0, {}, 0, 1.0).shape == (64, 64, 3)
    e.close()


def test_a_segmented_diffusion_render_stays_within_its_documented_bound_of_the_straight_one(tiny, tmp_path):
    """The img2img chain never fully forgets its past, so a segment rendered on its own (a resumed
    export, a Ray task) after its pre-roll matches a straight render only approximately. The bound
    documented in bridge/export/segments.py: within SEGMENT_BOUND of the straight render's frames
    (mean absolute difference per frame, 0–255), while two unrelated renders (another seed) differ
    far more — so the check can fail."""
    import av

    from bridge.analysis.project import analyze_project
    from bridge.demo.song import generate_demo_song, write_demo_stems
    from bridge.export.render import render_project
    from bridge.export.segments import LCM_SEGMENT_BOUND
    from bridge.project import load_project, save_project
    from bridge.project.create import new_project

    song = generate_demo_song(sample_rate=22050)
    n = int(4.0 * song.sample_rate)
    write_demo_stems(replace(song, stems={k: v[:, :n] for k, v in song.stems.items()}), tmp_path / "stems")
    new_project(tmp_path / "project", tmp_path / "stems")
    project, project_dir = load_project(tmp_path / "project")
    project = project.model_copy(update={"render": project.render.model_copy(update={"crf": 0})})
    save_project(project, project_dir)
    project, _ = load_project(project_dir)
    analysis = analyze_project(project, project_dir)

    def frames(out, **kw):
        path = render_project(project, project_dir, tmp_path / out, analysis=analysis, width=64, height=64,
                              fps=15, engine_name="lcm", model=str(tiny[0]), **kw)
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]).astype(float)

    straight = frames("straight.mp4", segments=1)
    cut = frames("cut.mp4", segments=4)
    assert cut.shape == straight.shape == (60, 64, 64, 3)
    per_frame = np.abs(cut - straight).mean(axis=(1, 2, 3))
    assert per_frame.max() <= LCM_SEGMENT_BOUND, per_frame.round(1).tolist()
    other = project.model_copy(update={"engine": project.engine.model_copy(update={"seed": 999})})
    save_project(other, project_dir)
    project = load_project(project_dir)[0]
    unrelated = frames("other.mp4", segments=1)
    assert np.abs(unrelated - straight).mean() > 2 * LCM_SEGMENT_BOUND


def test_two_engines_sharing_a_model_do_not_share_a_schedule(tiny):
    """The preview's engine and an export's share the loaded model (one per process) and run on
    their own threads. Here the export engine (4 steps) renders a frame in the middle of the
    preview engine's denoising loop (2 steps), as a thread switch could make it: the preview frame
    must still equal the one rendered alone (a shared scheduler's timesteps were overwritten)."""
    alone = engine(tiny, steps=3)
    alone.start(ctx())
    want = run(alone, 2, start=26)

    other = engine(tiny, steps=4)
    other.start(ctx())
    hits = []

    def interleave(e, i, t, state):
        if i == 0:
            hits.append(i)
            other.render(40, {"zoom": 0.0, "rotation": 0.0, "strength": 0.5}, 1, 1.0)
        return state

    a = engine(tiny, steps=3, callback_on_step_end=interleave)
    a.start(ctx())
    got = run(a, 2, start=26)
    assert hits, "the callback ran"
    np.testing.assert_array_equal(got, want)
