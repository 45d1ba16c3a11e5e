"""Exports winnow-tiny in the transformers.js / onnx-community folder layout and writes its model card."""
import hashlib
import json
import math
import os
import subprocess

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import GAP_FRAMES, MAX_ORDINAL, MIN_PATCHES, NUM_CLASSES, LmConfig, VitConfig
from options import card_parameters
from tok import Tokenizer, tokenizer_config

NEG = -1e9
OPSET = 14


class VisionExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        feats, layer = self.m.image_features(pixel_values)
        if self.m.identity is None:
            return feats, self.m.cls_similarity(layer)
        # The tower's own class of each patch: the runtime's tracker turns these into the temporal
        # identity's ordinals (model.track_ordinals).
        return feats, self.m.cls_similarity(layer), self.m.patch_classes(layer[:, 1:])


class EmbedExport(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.embed = lm.embed

    def forward(self, input_ids):
        return self.embed(input_ids)


def _rope_tables(pos, head_dim, theta):
    """cos / sin [B,1,S,head_dim] for the positions of this run: computed once, shared by every layer."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = pos.to(torch.float32).unsqueeze(-1) * inv
    cos = torch.cat([ang.cos(), ang.cos()], -1).unsqueeze(1)
    sin = torch.cat([ang.sin(), ang.sin()], -1).unsqueeze(1)
    return cos, sin


def _rotate(x, cos, sin):
    """model.rope with precomputed tables (rotate-half convention)."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


def _layer(layer, x, cos, sin, mask_add, past_k, past_v, half_kv=False):
    """model.LmLayer.forward, arranged for inference on a long KV cache.

    The cache is the expensive operand: [B, kv_heads, T, head_dim] per layer, read by both attention
    matmuls. The training code repeats it per query head (Expand + Reshape: two full copies of the
    cache per layer per run). Here the query heads that share a KV head are stacked along the row
    axis instead, q [B, kv_heads, rep*S, head_dim], so each matmul reads the cache once and the only
    other full pass over it is the Concat that writes present.* (which the contract requires).
    half_kv: the cache is float16 (past in, present out); attention runs in float32 on the cache as
    stored, so one prefill of a sequence and a prefill in pieces see the same rounded keys/values.
    """
    c = layer.c
    B, S, _ = x.shape
    rep = c.num_heads // c.num_kv_heads
    h = layer.in_norm(x)
    q = layer.q(h).view(B, S, c.num_heads, c.head_dim).transpose(1, 2)
    k = layer.k(h).view(B, S, c.num_kv_heads, c.head_dim).transpose(1, 2)
    v = layer.v(h).view(B, S, c.num_kv_heads, c.head_dim).transpose(1, 2)
    q = _rotate(q, cos, sin) * (1.0 / math.sqrt(c.head_dim))
    k = _rotate(k, cos, sin)
    if half_kv:
        k = torch.cat([past_k, k.half()], dim=2)
        v = torch.cat([past_v, v.half()], dim=2)
        ka, va = k.float(), v.float()
    else:
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        ka, va = k, v
    # Query head g*rep + r reads KV head g, as with model.py's expand(B, kv, rep, T, hd).
    qg = q.reshape(B, c.num_kv_heads, rep * S, c.head_dim)
    att = torch.matmul(qg, ka.transpose(-1, -2))
    T = att.shape[-1]
    att = (att.view(B, c.num_kv_heads, rep, S, T) + mask_add).softmax(-1)
    o = torch.matmul(att.view(B, c.num_kv_heads, rep * S, T), va)
    o = o.view(B, c.num_heads, S, c.head_dim).transpose(1, 2).reshape(B, S, c.num_heads * c.head_dim)
    x = x + layer.o(o)
    h = layer.post_norm(x)
    x = x + layer.down(F.silu(layer.gate(h)) * layer.up(h))
    return x, k, v


class DecoderExport(nn.Module):
    """decoder_model_merged: model.Lm's math (checked against it by export_all's reference outputs and
    tools/default-model/analysis/compare_decoders.mjs), arranged for a long KV cache (see _layer)."""

    def __init__(self, lm, half_kv=False):
        super().__init__()
        self.lm = lm
        self.half_kv = half_kv

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        c = self.lm.c
        B = inputs_embeds.shape[0]
        S = inputs_embeds.shape[1]
        past_len = past[0].shape[2]
        T = attention_mask.shape[1]
        # Additive mask [B,1,1,S,T], broadcast over (kv head, rep): causal inside the new tokens,
        # padding from attention_mask. S×T values, small next to the cache.
        i = torch.arange(S).view(S, 1) + past_len
        j = torch.arange(T).view(1, T)
        allowed = (j <= i).view(1, 1, 1, S, T) & (attention_mask.view(B, 1, 1, 1, T) > 0)
        mask_add = torch.where(allowed, torch.zeros(()), torch.full((), NEG))
        cos, sin = _rope_tables(position_ids, c.head_dim, c.rope_theta)
        x = inputs_embeds
        out = []
        for n, layer in enumerate(self.lm.layers):
            x, k, v = _layer(layer, x, cos, sin, mask_add, past[2 * n], past[2 * n + 1], self.half_kv)
            out += [k, v]
        return tuple([self.lm.head(self.lm.norm(x))] + out)


class ReferenceDecoderExport(nn.Module):
    """model.Lm's own forward (repeats K/V per query head): exported only if DecoderExport disagrees."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        B = inputs_embeds.shape[0]
        S = inputs_embeds.shape[1]
        past_len = past[0].shape[2]
        T = attention_mask.shape[1]
        i = torch.arange(S).view(S, 1) + past_len
        j = torch.arange(T).view(1, T)
        allowed = (j <= i).view(1, 1, S, T) & (attention_mask.view(B, 1, 1, T) > 0)
        mask_add = torch.where(allowed, torch.zeros(()), torch.full((), NEG))
        pairs = [(past[2 * k], past[2 * k + 1]) for k in range(len(past) // 2)]
        logits, presents = self.lm(inputs_embeds, position_ids, mask_add, pairs)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def check_decoder_export(lm, past_len=37, new=5, seed=0):
    """Max |diff| between DecoderExport and model.Lm (logits and presents) on a random past, in PyTorch."""
    c = lm.c
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(1, new, c.hidden_size, generator=g)
    past = [torch.randn(1, c.num_kv_heads, past_len, c.head_dim, generator=g) for _ in range(2 * c.num_layers)]
    am = torch.ones(1, past_len + new, dtype=torch.long)
    pos = torch.tensor([[past_len, past_len, past_len + 1, past_len + 2, past_len + 2]])[:, :new]
    with torch.no_grad():
        a = DecoderExport(lm)(emb, am, pos, *past)
        b = ReferenceDecoderExport(lm)(emb, am, pos, *past)
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reference_pixels(b=1):
    """A pattern the TypeScript test recomputes: v = 0.9*sin(0.07*x + 0.13*y + 1.7*c + 0.5*b)."""
    H = W = VitConfig.image_size
    y = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
    x = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    bb = torch.arange(b, dtype=torch.float64).view(b, 1, 1, 1)
    return (0.9 * torch.sin(0.07 * x + 0.13 * y + 1.7 * c + 0.5 * bb)).float()


def _weights_to_fp16(path_in, path_out, min_values=256):
    """Stores the float32 initializers of an ONNX file (those with at least min_values values) as
    float16, each read through a Cast back to float32: half the file, the same float32 compute
    (onnxruntime folds the casts when it loads the model)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(path_in)
    casts = []
    for init in m.graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_values:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "_fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT, name=name + "_to_fp32"))
    nodes = casts + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, path_out)


def export_lm_fp16(lm, onnx_dir, trace_inputs, in_names, out_names, dyn):
    """embed_tokens_fp16.onnx + decoder_model_merged_fp16.onnx: float16 weights and a float16 KV cache
    (past_key_values.* in, present.* out); inputs_embeds and logits stay float32 and the arithmetic
    runs in float32 (onnxruntime's CPU kernels have no float16 matmul on x86). Halves the KV cache
    held per token and the files."""
    emb, am, pos, past = trace_inputs
    tmp = os.path.join(onnx_dir, "decoder_model_merged_fp16.tmp.onnx")
    try:
        torch.onnx.export(
            DecoderExport(lm, half_kv=True).eval(), (emb, am, pos, *[p.half() for p in past]), tmp,
            input_names=in_names, output_names=out_names, dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True,
        )
        _weights_to_fp16(tmp, os.path.join(onnx_dir, "decoder_model_merged_fp16.onnx"))
        _weights_to_fp16(os.path.join(onnx_dir, "embed_tokens.onnx"), os.path.join(onnx_dir, "embed_tokens_fp16.onnx"))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_lm(lm, tok, onnx_dir, fp16=True):
    """Writes embed_tokens.onnx and decoder_model_merged.onnx for `lm` (a model.Lm) into onnx_dir,
    and with fp16 the *_fp16 pair (export_lm_fp16). A failure of the optional fp16 pair is printed,
    not raised: it must not cost the fp32 export at the end of a training run."""
    c = lm.c
    L = c.num_layers
    # ---- embed tokens
    ids = torch.tensor([[tok.bos] + tok.encode("t=0s")])
    torch.onnx.export(
        EmbedExport(lm).eval(), (ids,), os.path.join(onnx_dir, "embed_tokens.onnx"),
        input_names=["input_ids"], output_names=["inputs_embeds"],
        dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"}, "inputs_embeds": {0: "batch_size", 1: "sequence_length"}},
        opset_version=OPSET, do_constant_folding=True,
    )
    # ---- decoder (traced with a non-empty past so the cache path is kept)
    B, S, P = 1, 3, 2
    emb = torch.randn(B, S, c.hidden_size)
    past = []
    for _ in range(L):
        past += [torch.randn(B, c.num_kv_heads, P, c.head_dim), torch.randn(B, c.num_kv_heads, P, c.head_dim)]
    am = torch.ones(B, P + S, dtype=torch.long)
    pos = torch.tensor([[2, 3, 4]])
    in_names = ["inputs_embeds", "attention_mask", "position_ids"]
    out_names = ["logits"]
    dyn = {
        "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for i in range(L):
        for kv in ("key", "value"):
            in_names.append(f"past_key_values.{i}.{kv}")
            out_names.append(f"present.{i}.{kv}")
            dyn[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    diff = check_decoder_export(lm)
    exporter = DecoderExport(lm)
    if not diff < 1e-4:
        # Never lose an export at the end of a training run: fall back to the training layout.
        print(f"export: cache-friendly decoder differs from model.Lm by {diff:.2e}; exporting the reference layout")
        exporter = ReferenceDecoderExport(lm)
    torch.onnx.export(
        exporter.eval(), (emb, am, pos, *past), os.path.join(onnx_dir, "decoder_model_merged.onnx"),
        input_names=in_names, output_names=out_names, dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True,
    )
    if fp16 and isinstance(exporter, DecoderExport):
        try:
            export_lm_fp16(lm, onnx_dir, (emb, am, pos, past), in_names, out_names, dyn)
        except Exception as e:  # noqa: BLE001
            for name in ("decoder_model_merged_fp16.onnx", "embed_tokens_fp16.onnx"):
                if os.path.exists(os.path.join(onnx_dir, name)):
                    os.remove(os.path.join(onnx_dir, name))
            print(f"export: fp16 variant not written: {e}")


def export_all(model, tok, out_dir, metrics=None, train_args=None, train_info=None, eval_meta=None):
    model.eval()
    onnx_dir = os.path.join(out_dir, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    c = LmConfig
    L = c.num_layers
    # ---- vision encoder
    px = reference_pixels(2)
    vision_outputs = ["image_features", "cls_similarity"] + (["patch_classes"] if model.identity is not None else [])
    torch.onnx.export(
        VisionExport(model).eval(), (px,), os.path.join(onnx_dir, "vision_encoder.onnx"),
        input_names=["pixel_values"], output_names=vision_outputs,
        dynamic_axes={"pixel_values": {0: "batch_size"}, **{k: {0: "batch_size"} for k in vision_outputs}},
        opset_version=OPSET, do_constant_folding=True,
    )
    export_lm(model.lm, tok, onnx_dir)
    # ---- configs
    vocab = len(tok.vocab)
    config = {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "name": "winnow-tiny",
        "image_token_index": tok.image,
        "image_seq_length": (VitConfig.image_size // VitConfig.patch_size) ** 2,
        "vision_feature_layer": VitConfig.feature_layer,
        "vision_feature_select_strategy": "default",
        "projector_hidden_act": "gelu",
        "text_config": {
            "model_type": "llama",
            "hidden_size": c.hidden_size,
            "intermediate_size": c.mlp_size,
            "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.num_kv_heads,
            "head_dim": c.head_dim,
            "vocab_size": vocab,
            "rope_theta": c.rope_theta,
            "rms_norm_eps": c.rms_eps,
            "max_position_embeddings": 16384,
            "hidden_act": "silu",
            "bos_token_id": tok.bos,
            "eos_token_id": tok.eos,
            "pad_token_id": tok.pad,
        },
        "vision_config": {
            "model_type": "vit",
            "image_size": VitConfig.image_size,
            "patch_size": VitConfig.patch_size,
            "hidden_size": VitConfig.hidden_size,
            "num_hidden_layers": VitConfig.num_layers,
            "num_attention_heads": VitConfig.num_heads,
            "intermediate_size": VitConfig.mlp_size,
            "num_channels": 3,
        },
        "bos_token_id": tok.bos,
        "eos_token_id": tok.eos,
        "pad_token_id": tok.pad,
        "winnow": {
            "visual_position_scheme": "frame-shared",
            "frame_marker": "t={s}s",
            "video_pooling": {"stride": 2, "mode": "avg"},
            "caption_prompt": "describe the picture.",
            "prompt_layout": "<bos>, then per frame: frame_marker text + one <image> per kept visual token (all at one shared position), then the chat template of the question with add_generation_prompt",
            "grid": [VitConfig.image_size // VitConfig.patch_size, VitConfig.image_size // VitConfig.patch_size],
        },
    }
    if model.identity is not None:
        # float32 values written as the shortest decimal that reads back to the same float32.
        table = model.identity.table.detach().float().numpy()
        config["winnow"]["temporal_identity"] = {
            "about": "video only: the tracker (src/encode/tracker.ts; tools/default-model/model.py track_ordinals) reads vision_encoder's patch_classes per sampled frame from the video's first frame; a class present on >= min_patches tokens after >= gap_frames frames without it is a new object, numbered within its group (class_groups[class], 0 = never tracked) from 1, capped at max_ordinal; every token of a tracked class carries that ordinal's embedding row (ordinal k -> row k-1), added to image_features before video pooling",
            "min_patches": MIN_PATCHES,
            "gap_frames": GAP_FRAMES,
            "max_ordinal": MAX_ORDINAL,
            "class_groups": [0] + [(k - 1) // 6 + 1 for k in range(1, NUM_CLASSES)],
            "embeddings": [[float(v) for v in row] for row in table],
        }
    pre = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"height": VitConfig.image_size, "width": VitConfig.image_size},
        "resample": 3,
        "do_pad": True,
        "pad_mode": "fit",
        "do_center_crop": False,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
    }
    gen = {"bos_token_id": tok.bos, "eos_token_id": tok.eos, "pad_token_id": tok.pad, "max_new_tokens": 24, "do_sample": False}
    w = lambda name, obj: json.dump(obj, open(os.path.join(out_dir, name), "w"), indent=2)
    w("config.json", config)
    w("preprocessor_config.json", pre)
    w("generation_config.json", gen)
    w("tokenizer.json", tok.hf_json())
    w("tokenizer_config.json", tokenizer_config())
    # ---- reference outputs (PyTorch), checked by test/model against onnxruntime-node
    # torch.onnx.export restores the training flag of the module it was given; the wrappers are
    # put in eval mode above, and this makes sure (BatchNorm must use its running statistics).
    model.eval()
    with torch.no_grad():
        feats, layer = model.image_features(reference_pixels(1))
        cls_sim = model.cls_similarity(layer)
        prompt = [tok.bos] + tok.marker(0) + tok.question("what color is the circle?")
        pids = torch.tensor([prompt])
        pos = torch.arange(len(prompt)).view(1, -1)
        S = len(prompt)
        causal = torch.ones(S, S).tril().bool()
        mask = torch.zeros(1, 1, S, S).masked_fill(~causal.view(1, 1, S, S), NEG)
        logits, _ = model.lm(model.lm.embed(pids), pos, mask)
    feat_probe = [[0, 0], [0, 5], [17, 3], [100, 64], [195, 127]]
    ref = {
        "pixel_pattern": "v[b,c,y,x] = 0.9*sin(0.07*x + 0.13*y + 1.7*c + 0.5*b), float32, batch 1",
        "image_features": [{"token": t, "dim": d, "value": float(feats[0, t, d])} for t, d in feat_probe],
        "cls_similarity": [{"token": t, "value": float(cls_sim[0, t])} for t in (0, 50, 195)],
        "prompt_ids": prompt,
        "position_ids": list(range(len(prompt))),
        "logits": [{"position": p, "values": [float(v) for v in logits[0, p]]} for p in (1, len(prompt) - 1)],
    }
    if model.identity is not None:
        with torch.no_grad():
            ref["patch_classes"] = [int(c) for c in model.patch_classes(layer[:, 1:])[0]]
    w("reference_outputs.json", ref)
    fingerprint = sha256(os.path.join(onnx_dir, "vision_encoder.onnx"))
    verify = None
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    script = os.path.join(os.path.dirname(__file__), "verify.mjs")
    try:
        r = subprocess.run(["node", script, out_dir], cwd=repo, capture_output=True, text=True, timeout=300)
        verify = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
    except Exception as e:  # noqa: BLE001
        verify = f"not run: {e}"
    speed = None
    try:
        r = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "speed.mjs"), out_dir, "--threads", "2"], cwd=repo, capture_output=True, text=True, timeout=600)
        speed = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else None
    except Exception:  # noqa: BLE001
        speed = None
    write_card(out_dir, config, metrics, train_args, train_info, eval_meta, fingerprint, verify, model, speed)
    return verify


def status_lines(metrics, speed):
    """The default-model issue's targets against this export's numbers."""
    full, orc, rnd, vid = metrics.get("stills_all", {}), metrics.get("stills_oracle", {}), metrics.get("stills_random20", {}), metrics.get("videos", {})
    met = lambda ok: "met" if ok else "not met"
    fam = lambda m, fs: ", ".join(f"{f} {m[f]:.1f}" for f in fs if f in m)
    rows = []
    if "F" in full:
        rows.append(("F1–F4 ≥ 95 % (all tokens)", f"F {full['F']:.1f} % ({fam(full, ['F1', 'F2', 'F3', 'F4'])})", met(all(full.get(f, 0) >= 95 for f in ("F1", "F2", "F3", "F4")))))
    if "C1" in full:
        rows.append(("C1 ≥ 90 % exact", f"{full['C1']:.1f} %", met(full["C1"] >= 90)))
    if "V" in vid:
        rows.append(("V1–V3 ≥ 90 % on 10–30 s videos", f"V {vid['V']:.1f} % ({fam(vid, ['V1', 'V2', 'V3'])})", met(all(vid.get(f, 0) >= 90 for f in ("V1", "V2", "V3")))))
    kept = metrics.get("oracle_kept_fraction")
    if "F" in orc and "F" in full and kept is not None:
        rel = 100 * orc["F"] / full["F"]
        o1 = metrics.get("stills_oracle_min1", {})
        # Judged on the strict oracle; the minKeep-1 reading is shown beside it, not instead of it.
        extra = f"; {100 * o1['F'] / full['F']:.1f} % when a frame with no object keeps one token (minKeep 1)" if "F" in o1 else ""
        rows.append(("oracle ≤ 20 % of tokens keeps ≥ 95 %", f"{100 * kept:.1f} % kept, {rel:.1f} % of full (F){extra}", met(kept <= 0.2 and rel >= 95)))
    if "F" in rnd and "F" in full:
        lost = full["F"] - rnd["F"]
        per = ", ".join(f"{f} {full[f] - rnd[f]:.1f}" for f in ("F1", "F2", "F3", "F4") if f in full and f in rnd)
        rows.append(("random 20 % loses ≥ 10 points", f"{lost:.1f} points (F; {per})", met(lost >= 10)))
    if speed:
        v, p, d = speed["visionMsPerFrameBatch8"]["median"], speed["prefillTokensPerS"]["median"], speed["decodeTokensPerS"]["median"]
        rows.append(("speed: encoder ≤ 15 ms/frame, prefill ≥ 5,000 tok/s, decode ≥ 100 tok/s", f"{v:.1f} ms, {p:,.0f} tok/s, {d:,.0f} tok/s", met(v <= 15 and p >= 5000 and d >= 100)))
    return ["", "## Status against the default-model targets", "| target | measured | |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]


NOTES_BEGIN, NOTES_END = "<!-- notes -->", "<!-- /notes -->"


def carried_notes(path):
    """The hand-written block between NOTES_BEGIN and NOTES_END of an existing card, without a
    previous carry-over line, or None."""
    if not os.path.exists(path):
        return None
    text = open(path).read()
    a, b = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if a < 0 or b < a:
        return None
    body = [l for l in text[a + len(NOTES_BEGIN) : b].strip("\n").splitlines() if not l.startswith("_Carried over from")]
    return "\n".join(body).strip("\n") or None


def write_card(out_dir, config, metrics, train_args, train_info, eval_meta, fingerprint, verify, model, speed=None):
    n = lambda m: sum(p.numel() for p in m.parameters())
    # The hand-written part of the card (what the model is and sees, how to rebuild it) is prose, not a
    # measurement: an export keeps the one already in the folder and regenerates everything from
    # "## Architecture" on.
    card_path = os.path.join(out_dir, "MODEL_CARD.md")
    preamble = None
    if os.path.exists(card_path):
        with open(card_path, encoding="utf-8") as f:
            old = f.read()
        if "\n## Architecture" in old:
            preamble = old[: old.index("\n## Architecture")].rstrip("\n").split("\n")
    if preamble is None:
        preamble = [
            "# winnow-tiny",
            "",
            "A small LLaVA-style vision-language model trained by the Winnow project on its synthetic world",
            "(docs/default-model.md), exported in the transformers.js / onnx-community folder layout.",
            "Rebuild: `bash tools/default-model/build.sh` (tools/default-model/README.md).",
        ]
    lines = preamble + [
        "",
        "## Architecture",
        f"- Vision tower: ViT, {VitConfig.image_size} px input, {VitConfig.patch_size} px patches "
        f"({(VitConfig.image_size // VitConfig.patch_size) ** 2} patch tokens + [CLS]), width {VitConfig.hidden_size}, "
        f"{VitConfig.num_layers} layers; image features = layer -2 patch tokens ({n(model.vit)} parameters).",
        f"- Projector: LayerNorm + 2-layer MLP (GELU) {VitConfig.hidden_size} → {LmConfig.hidden_size}, plus a learned embedding of each "
        f"token's grid cell (initialised to a 2-D sine/cosine pattern) added to its output ({n(model.projector)} parameters).",
        f"- LM: Llama-style decoder, width {LmConfig.hidden_size}, {LmConfig.num_layers} layers, {LmConfig.num_heads} heads, "
        f"{LmConfig.num_kv_heads} KV heads, head dim {LmConfig.head_dim}, SwiGLU {LmConfig.mlp_size}, RoPE θ={LmConfig.rope_theta:g} "
        f"({n(model.lm)} parameters). Word-level tokenizer, {config['text_config']['vocab_size']} tokens.",
        "- `vision_encoder.onnx` outputs `image_features` [B,196,128] and `cls_similarity` [B,196] "
        "(cosine between the layer -2 [CLS] and each patch token)"
        + (", and `patch_classes` [B,196] (int64: the stage-A class head's argmax per patch, 0 background, 1 + shape·6 + colour)." if model.identity is not None else "."),
    ]
    if model.identity is not None:
        lines += [
            f"- Temporal identity (video frames only; config.json `winnow.temporal_identity`): a tracker in the runtime",
            f"  (src/encode/tracker.ts, the same rule as `track_ordinals` in tools/default-model/model.py) reads each",
            f"  sampled frame's `patch_classes` from the video's first frame. A class on at least {MIN_PATCHES} tokens that was",
            f"  absent for the previous {GAP_FRAMES} frames (or never seen) is a new object and gets the next ordinal among",
            f"  the objects of its shape (1 = the first circle to appear, capped at {MAX_ORDINAL}); it keeps that ordinal while",
            f"  present. Every token of it gets the ordinal's learned vector ({n(model.identity)} parameters, trained in phase 2",
            "  from zeros) added to its projected features before video pooling. Per-frame features cannot tell the",
            "  red circle now from one that left ten seconds ago; the ordinal can, so \"how many appeared\" and",
            "  \"which came first\" become a look-up. The ordinals come from the tower's own predictions, never",
            "  from labels; pruning can still drop the tokens that carry them.",
        ]
    lines += [
        f"- Vision encoder fingerprint (sha256 of onnx/vision_encoder.onnx): `{fingerprint}`",
        "",
        "## Positions and prompt layout",
        "`visual_position_scheme: frame-shared`: all visual tokens of one frame share one position id, so a",
        "pruned frame keeps exactly the positions the model was trained with, and a frame costs one position",
        "whatever its token count (long videos never run out of positions). Location is carried by the",
        "features themselves: the projector adds its cell embedding to every token, so a kept token says",
        "where it is, whatever else was pruned. The runtime needs no position bookkeeping for pruned frames.",
        "Prompt: `<bos>`, then per frame `t={s}s` + one `<image>` per visual token, then",
        "`<|user|> {question} <|assistant|>`; the answer ends with `<eos>`. Videos pool each frame's 14×14",
        "grid to 7×7 (2×2 average) before pruning; still images keep all 196 tokens.",
        "",
        "## Training",
        "Reproduce (fixed seeds, this 2-core machine): `bash tools/default-model/build.sh`.",
        "- Data: `winnow synth --shards` (frames rendered by the project's renderer, H.264-encoded and",
        "  decoded back through the same ffmpeg filter that ingest uses for the model input).",
        "- Stage A: the vision tower learns dense labels (each patch's object class, object centres, coverage,",
        "  patch coordinates; the image's object set from [CLS]) and, on every object token, three scene",
        "  facts derived from the same labels: how many objects of its shape the image holds, how many",
        "  objects in all, and its object's place from the left. A token then carries what \"how many\" and",
        "  \"left to right\" need by itself instead of leaving the LM to assemble it from attention shares",
        "  over the whole frame (shares that change when background tokens are pruned). Full images only.",
        "- Stage B: vision tower frozen (its features of every training frame cached once); projector + LM",
        "  learn the world's questions on full token sequences (several questions packed per image, each",
        "  attending to the visual prefix and itself; 1 fps clips of up to 30 frames, 2×2 pooled, for the",
        "  video questions, mixed in after the first 20 % of steps). LM loss only, steps_b1 steps of a",
        "  steps_b-step schedule (warm-up, cosine). Phase 2 (steps_b2 steps, a fresh schedule from lr_b2,",
        "  clip_frac_b2 of the batches clips, clip_last_b2 of those ending at the video's last frame): the",
        "  same loss plus attn_entropy × the mean attention entropy (nats) of the question and answer",
        "  tokens over all layers and heads. Phase 1 leaves those tokens",
        "  spreading their attention over dozens of background tokens that carry nothing, so answers leaned",
        "  on the background being there; the penalty makes them rest on the tokens that hold the answer",
        "  (and `<bos>`). It is label-free and sees full token sequences (proj_aux > 0 adds linear probes",
        "  on the projected tokens, which the export before the cell embedding used to keep location).",
        "  No token dropping, pruning or masking augmentation and no supervision of which tokens matter:",
        "  pruning results are training-free.",
    ]
    if train_args:
        lines.append("- Parameters: " + card_parameters(train_args))
        resumed = [f"{k}={train_args[k]}" for k in ("resume_a1", "resume_a", "resume_b1") if train_args.get(k)]
        if resumed:
            lines.append("- Resumed from a saved checkpoint (the stages before it were not rerun): " + ", ".join(resumed))
        if train_args.get("from_checkpoint"):
            lines.append(f"- Exported from the trained state dict `{train_args['from_checkpoint']}` (`--from-checkpoint`: evaluated and exported here; the parameters above are the run that trained it).")
    if train_info:
        lines.append(f"- Time: stage A {train_info.get('stage_a_s')} s, stage B {train_info.get('stage_b_s')} s.")
    lines += ["", "## Evaluation (held-out seed, frames decoded from H.264)"]
    if eval_meta:
        lines.append(f"Evaluation shards: seed {eval_meta.get('seed')} (never used for training).")
    if metrics:
        fams = ["F1", "F2", "F3", "F4", "F", "C1"]
        lines += ["", "| setting | " + " | ".join(fams) + " |", "|---|" + "---|" * len(fams)]
        for key, label in (("stills_all", "all 196 tokens"), ("stills_oracle", f"oracle (object tokens, {100 * (metrics.get('oracle_kept_fraction') or 0):.1f} % kept)"), ("stills_oracle_min1", "oracle, minKeep 1 (one random token when no object)"), ("stills_random20", "random 20 %")):
            m = metrics.get(key)
            if m is None:
                continue
            lines.append(f"| {label} | " + " | ".join(str(m.get(f, "-")) for f in fams) + " |")
        full, orc, rnd = metrics.get("stills_all", {}), metrics.get("stills_oracle", {}), metrics.get("stills_random20", {})
        rel = lambda a, f: f"{100 * a[f] / full[f]:.1f} %" if full.get(f) and f in a else "-"
        drop = lambda f: f"{full[f] - rnd[f]:.1f}" if f in full and f in rnd else "-"
        lines += [
            "",
            "Redundancy (targets: oracle ≥ 95 % of all-token accuracy at ≤ 20 % of tokens; random 20 % loses ≥ 10 points):",
            "",
            "| | " + " | ".join(fams) + " |",
            "|---|" + "---|" * len(fams),
            "| oracle / all tokens | " + " | ".join(rel(orc, f) for f in fams) + " |",
            *(["| oracle minKeep 1 / all tokens | " + " | ".join(rel(metrics["stills_oracle_min1"], f) for f in fams) + " |"] if "stills_oracle_min1" in metrics else []),
            "| points lost by random 20 % | " + " | ".join(drop(f) for f in fams) + " |",
        ]
        vf = ["V1", "V2", "V3", "V", "F1", "F2", "F3", "F4"]
        lines += ["", "Videos (whole video, questions at the last frame, 1 fps, 2×2 pooled):", "", "| " + " | ".join(vf) + " |", "|" + "---|" * len(vf)]
        lines.append("| " + " | ".join(str(metrics.get("videos", {}).get(f, "-")) for f in vf) + " |")
        lines += ["", f"Counts: {json.dumps(metrics.get('counts'))}. Accuracy = exact match of the greedy answer."]
    if metrics:
        lines += status_lines(metrics, speed)
    # Findings written by hand (probes, pilots) outlive a re-export: they describe the recipe, and a
    # rebuild that silently dropped them would lose the record of what was tried. Marked as carried.
    notes = carried_notes(os.path.join(out_dir, "MODEL_CARD.md"))
    if notes:
        lines += ["", NOTES_BEGIN, "_Carried over from the previous MODEL_CARD.md: numbers in this block belong to the export they name._", notes, NOTES_END]
    if os.path.exists(os.path.join(out_dir, "onnx", "decoder_model_merged_fp16.onnx")):
        lines += [
            "",
            "## Variants",
            "- `onnx/*_fp16.onnx` (dtype `fp16`): float16 weights and a float16 KV cache (`past_key_values.*`, `present.*`),",
            "  float32 `inputs_embeds` and `logits`, float32 arithmetic. Half the KV bytes per token.",
        ]
    if speed:
        v, p, d = speed["visionMsPerFrameBatch8"], speed["prefillTokensPerS"], speed["decodeTokensPerS"]
        lines += [
            "",
            f"## Speed (onnxruntime-node, this CPU, {speed['threads']} threads; `node tools/default-model/speed.mjs DIR`)",
            "",
            "| | median | min – max | target |",
            "|---|---|---|---|",
            f"| vision encoder, ms/frame at batch 8 | {v['median']:.2f} | {v['min']:.2f} – {v['max']:.2f} | ≤ 15 |",
            f"| prefill, tokens/s ({p['tokens']} tokens, empty cache) | {p['median']:,.0f} | {p['min']:,.0f} – {p['max']:,.0f} | ≥ 5,000 |",
            f"| decode, tokens/s (one token a step after {d['context']} tokens) | {d['median']:,.0f} | {d['min']:,.0f} – {d['max']:,.0f} | ≥ 100 |",
        ]
    lines += ["", "## Export check", f"onnxruntime-node vs PyTorch: {verify}", ""]
    open(os.path.join(out_dir, "MODEL_CARD.md"), "w").write("\n".join(lines))
