"""V3 ("how many {shape}s appeared?") of a stage-B checkpoint on the evaluation videos, at each video's
last frame, split by true answer and by whether the answer exceeds the most objects of that shape ever
present together in one frame (objects that came one after another; train.apart_counts).
  /usr/bin/python3 tools/default-model/analysis/v3_apart.py CHECKPOINT [--eval-shards DIR] [--threads N]
Build-time analysis only (MODEL_CARD notes, "Why V3 stays below 90")."""
import argparse
import os
import sys

# train.py and its modules sit one folder up, beside the build.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train import LmConfig, Shards, Tokenizer, WinnowTiny, apart_counts, clip_features, clip_seq, lm_depth, load_checkpoint, score, torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--eval-shards", default="/tmp/winnow-default-model/eval")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = Tokenizer()
    sd = torch.load(args.checkpoint)
    LmConfig.num_layers = lm_depth(sd)
    model = WinnowTiny(len(tok.vocab), temporal_identity="identity.table" in sd)
    load_checkpoint(model, sd, ("proj_heads.",))
    model.eval()
    data = Shards(args.eval_shards)
    apart_counts(data)
    res = {}
    with torch.no_grad():
        for v in data.videos:
            frames = data.video_rgb[v["globalOffset"] : v["globalOffset"] + v["numFrames"]]
            qas = [q for q in v["frames"][-1]["qa"] if q["id"] == "V3"]
            if not qas:
                continue
            feats = clip_features(model, frames)
            for q, (_, ok) in zip(qas, score(model, [clip_seq(tok, list(feats), qas)])):
                for key in ("all", "apart" if q.get("apart") else "together", "answer " + q["answer"]):
                    r = res.setdefault(key, [0, 0])
                    r[0] += ok
                    r[1] += 1
    for key, (ok, n) in sorted(res.items()):
        print(f"{key}: {ok}/{n} = {100.0 * ok / n:.1f} %")


if __name__ == "__main__":
    main()
