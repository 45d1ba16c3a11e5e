"""Average the weights of stage-B checkpoints that share one start (a "model soup": phase 2s from the
same phase-1 end, e.g. with other seeds), for evaluation and export with train.py --from-checkpoint.
  /usr/bin/python3 tools/default-model/analysis/soup.py A.pt B.pt [...] --out SOUP.pt [--weights 1,1,...]
Build-time only. Refuses checkpoints whose frozen vision towers differ: those do not share a start."""
import argparse

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--weights", help="comma-separated, one per checkpoint (default: equal)")
    args = ap.parse_args()
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(args.checkpoints)
    if len(weights) != len(args.checkpoints) or min(weights) < 0 or sum(weights) <= 0:
        raise SystemExit("--weights: one non-negative weight per checkpoint, not all zero")
    total = sum(weights)
    sds = [torch.load(p, map_location="cpu") for p in args.checkpoints]
    keys = set(sds[0])
    for p, sd in zip(args.checkpoints[1:], sds[1:]):
        if set(sd) != keys:
            raise SystemExit(f"{p}: other parameter names than {args.checkpoints[0]}")
        for k in keys:
            if k.startswith("vit.") and not torch.equal(sd[k], sds[0][k]):
                raise SystemExit(f"{p}: vision tower differs from {args.checkpoints[0]} ({k}); not one start")
    out = {}
    for k in sds[0]:
        if sds[0][k].is_floating_point():
            acc = sum(w / total * sd[k].double() for w, sd in zip(weights, sds))
            out[k] = acc.to(sds[0][k].dtype)
        else:
            out[k] = sds[0][k]
    torch.save(out, args.out)
    print(f"averaged {len(sds)} checkpoints (weights {weights}) -> {args.out}")


if __name__ == "__main__":
    main()
