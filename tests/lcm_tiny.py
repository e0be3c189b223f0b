"""Tiny random diffusion models for the LCM engine tests (diffusers' own testing habit: small configs,
fixed seeds, ``save_pretrained`` into a folder, load back through the code under test).

Everything is built from configs: a UNet2DConditionModel with ``time_cond_proj_dim`` (the LCM
guidance embedding), an AutoencoderKL, an AutoencoderTiny (TAESD layout), a CLIPTextModel and a
CLIPTokenizer whose vocab.json / merges.txt are written by hand (byte-level characters only, so no
download of a real vocabulary). Both autoencoders downsample by 2, so a 64×64 frame is a 32×32
latent: small enough for a frame in a few milliseconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Hidden size of the tiny text encoder = cross-attention size of the tiny UNet.
TEXT_HIDDEN = 32
#: LCM guidance-embedding size of the tiny UNet.
TIME_COND_DIM = 32


def _byte_chars() -> list[str]:
    """The 256 printable characters GPT-2/CLIP byte-level BPE uses for the bytes 0..255 (the same
    table as ``bytes_to_unicode`` in CLIP's reference tokenizer, written out here so the vocabulary is
    independent of the code under test)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer(folder: Path) -> int:
    """A CLIP tokenizer over single byte-level characters (+ a few merges): returns the vocab size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    merges = ["t h", "th e</w>", "o n</w>", "e r</w>", "a n"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }), encoding="utf-8")
    return len(vocab)


def _components(folder: Path, *, seed: int, lcm: bool):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = folder.parent / (folder.name + "-tokenizer-src")
    vocab_size = write_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN, norm_num_groups=4, attention_head_dim=4,
        time_cond_proj_dim=TIME_COND_DIM if lcm else None,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=TEXT_HIDDEN, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=vocab_size,
        max_position_embeddings=77,
    ))
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_tiny_lcm(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny LatentConsistencyModelPipeline (model_index.json + components, LCMScheduler) into
    ``folder``, and a tiny AutoencoderTiny into ``folder.parent / (folder.name + '-taesd')``."""
    import torch
    from diffusers import AutoencoderTiny, LatentConsistencyModelPipeline, LCMScheduler

    folder = Path(folder)
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                             original_inference_steps=50, timestep_spacing="leading")
    LatentConsistencyModelPipeline(scheduler=scheduler, **_components(folder, seed=seed, lcm=True)).save_pretrained(folder)
    torch.manual_seed(seed + 3)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4,
    )
    taesd.save_pretrained(folder.parent / (folder.name + "-taesd"))
    return folder


def build_tiny_sd(folder: Path, *, seed: int = 10) -> Path:
    """A tiny *plain* StableDiffusionPipeline (UNet without the LCM guidance embedding, Euler
    scheduler): what SD 1.5 (for the LCM-LoRA) or sd-turbo look like on disk."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    folder = Path(folder)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    StableDiffusionPipeline(scheduler=scheduler, image_encoder=None,
                            **_components(folder, seed=seed, lcm=False)).save_pretrained(folder)
    return folder


def build_tiny_lora(sd_folder: Path, out_folder: Path, *, seed: int = 20, rank: int = 4) -> Path:
    """A random LoRA for the tiny SD UNet (attention projections), saved the way diffusers saves
    LoRAs (``pytorch_lora_weights.safetensors``). Needs peft."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(sd_folder, subfolder="unet")
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    StableDiffusionPipeline.save_lora_weights(out_folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return Path(out_folder)
