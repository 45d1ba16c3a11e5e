#!/usr/bin/env bash
# Rebuilds models/winnow-tiny from scratch on a CPU (about 100 minutes on 2 cores, plus ~25 minutes
# of rendering the training shards on first use):
#   apt-get update && apt-get install -y python3-torch python3-onnx libopenblas0-pthread libjemalloc2
#   bash tools/default-model/build.sh
# Without options it runs the base recipe (no side fact, no temporal identity). The shipped export
# adds options (tools/default-model/checkpoints/README.md, "side025_identity"):
#   bash tools/default-model/build.sh --side-weight 0.25 --temporal-identity --identity-init 4 \
#     --identity-lr-scale 10 --family-weight-b2 F4=3,V3=3 --apart-weight-b2 4 \
#     --entropy-family-scale V1=0,V2=0,V3=0 --steps-b2 1000 --clip-frac-b2 0.5 --clip-last-b2 0.9
# (from scratch; add --resume-b1 tools/default-model/checkpoints/side025_stage_b1.pt for phase 2 only).
# Training data and evaluation data are rendered by `winnow synth --shards` (seeds 1000 and 2000).
# Stage A (vision tower, dense labels, 1000 steps) ~9 min, then phase A2 (1200 steps, the same labels
# plus the scene facts on every object token: objects of its shape, objects in all, place from the
# left) ~10 min; the frozen tower's features of every training frame are cached once (~12 min);
# stage B (projector with its cell embedding + LM, one 3000-step schedule, 1 fps clips mixed in after
# 20 %) ~55 min; phase 2 (400 steps, the same loss plus an attention-entropy penalty on the question
# tokens) ~8 min; evaluation and export (ONNX, onnxruntime-node check, speed, MODEL_CARD.md) a few
# minutes. Checkpoints in tools/default-model/runs/latest (stage_a1.pt, stage_a.pt, stage_b1_last.pt
# every 250 steps, stage_b1.pt, feature_cache.pt); --resume-a1 continues from stage A phase 1,
# --resume-a from stage A, --resume-b1 from stage B phase 1, --resume-b1-state WORK/stage_b1_last_resume.pt
# continues phase 1 exactly where it stopped (model, optimizer, batch sampler; written every 250 steps).
# tools/default-model/checkpoints/ holds resume points of a candidate that outlasted a session.
# --extra-videos DIR (stage B) / --extra-videos-b2 DIR (phase 2 only) add video shards, e.g. rendered by
# `synth --shards --out "$DATA/apart" --seed 4000 --videos 1000 --video-mix apart-rich` (MODEL_CARD notes,
# "Apart-rich clips"; not part of the shipped recipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/winnow-default-model}
[ -f "$DATA/train/meta.json" ] || node --import tsx src/cli/index.ts synth --shards --out "$DATA/train" --seed 1000 --stills 30000 --videos 2000
[ -f "$DATA/eval/meta.json" ] || node --import tsx src/cli/index.ts synth --shards --out "$DATA/eval" --seed 2000 --stills 1000 --videos 100
# jemalloc keeps freed tensor memory instead of returning it with munmap (glibc's behaviour for
# blocks > 32 MB), and with decay off it never hands pages back: otherwise every step page-faults its
# activations in again (measured: 40-50 % of CPU time in the kernel, steps 2x slower).
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$JEMALLOC" ] && export LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
# torch parallelizes with OpenMP; OpenBLAS's own thread pool on top of it oversubscribes the two
# cores and spins in sched_yield (still steps 1.85 s -> 1.30 s with one BLAS thread).
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
exec /usr/bin/python3 -u tools/default-model/train.py --shards "$DATA/train" --eval-shards "$DATA/eval" --out models/winnow-tiny "$@"
