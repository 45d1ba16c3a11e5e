"""Re-exports the language half of an exported winnow-tiny folder (embed_tokens + decoder_model_merged)
with the current export.py, reading the LM weights back from the folder's ONNX initializers.

Use it to give an existing model folder the current decoder layout without retraining:
    /usr/bin/python3 tools/default-model/analysis/reexport_lm.py models/winnow-tiny /tmp/out
OUT gets onnx/embed_tokens.onnx and onnx/decoder_model_merged.onnx and their *_fp16 pair (float16
weights and KV cache); the other files of SRC (configs, tokenizer, vision encoder) are copied unchanged.
Then compare with: node tools/default-model/analysis/compare_decoders.mjs SRC OUT [--dtype fp16 --tol 0.05]
"""
import argparse
import os
import shutil
import sys

import onnx
import torch
from onnx import numpy_helper

# model.py, tok.py and export.py sit one folder up, beside the build.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model import Lm, LmConfig  # noqa: E402
from tok import Tokenizer  # noqa: E402
import export  # noqa: E402

# MatMul node (as torch.onnx names it) -> Linear module; the initializer is the transposed weight.
LINEARS = ["q", "k", "v", "o", "gate", "up", "down"]


def load_lm(src_dir):
    dec = onnx.load(os.path.join(src_dir, "onnx", "decoder_model_merged.onnx"))
    emb = onnx.load(os.path.join(src_dir, "onnx", "embed_tokens.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in dec.graph.initializer}
    embed = {i.name: numpy_helper.to_array(i) for i in emb.graph.initializer}["embed.weight"]
    LmConfig.vocab_size = embed.shape[0]
    lm = Lm(LmConfig).eval()
    state = {"embed.weight": embed}
    for n in dec.graph.node:
        if n.op_type != "MatMul":
            continue
        parts = n.name.strip("/").split("/")  # lm, layers.0, q, MatMul  |  lm, head, MatMul
        w = next((i for i in n.input if i in inits), None)
        if w is None:
            continue
        if parts[1] == "head":
            state["head.weight"] = inits[w].T
        elif parts[1].startswith("layers.") and parts[2] in LINEARS:
            state[f"{parts[1]}.{parts[2]}.weight"] = inits[w].T
    for name, a in inits.items():
        if name.startswith("lm.") and name.endswith("norm.weight"):
            state[name[3:]] = a
    missing = set(lm.state_dict()) - set(state)
    if missing:
        raise SystemExit(f"weights not found in {src_dir}: {sorted(missing)}")
    lm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    return lm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    args = ap.parse_args()
    lm = load_lm(args.src)
    print(f"PyTorch check, cache-friendly decoder vs model.Lm: max |diff| {export.check_decoder_export(lm):.2e}")
    if os.path.abspath(args.src) != os.path.abspath(args.out):
        shutil.copytree(args.src, args.out, dirs_exist_ok=True)
    onnx_dir = os.path.join(args.out, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    with torch.no_grad():
        export.export_lm(lm, Tokenizer(), onnx_dir)
    print(f"wrote {onnx_dir}")


if __name__ == "__main__":
    main()
