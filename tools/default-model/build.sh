#!/usr/bin/env bash
# Rebuilds models/winnow-tiny from scratch on a CPU (about 70 minutes on 2 cores):
#   apt-get update && apt-get install -y python3-torch python3-onnx libopenblas0-pthread libjemalloc2
#   bash tools/default-model/build.sh
# Training data and evaluation data are rendered by `winnow synth --shards` (seeds 1000 and 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/winnow-default-model}
[ -f "$DATA/train/meta.json" ] || node --import tsx src/cli/index.ts synth --shards --out "$DATA/train" --seed 1000 --stills 30000 --videos 2000
[ -f "$DATA/eval/meta.json" ] || node --import tsx src/cli/index.ts synth --shards --out "$DATA/eval" --seed 2000 --stills 1000 --videos 100
# jemalloc keeps freed tensor memory instead of returning it with munmap (glibc's behaviour for
# blocks > 32 MB), which otherwise costs a page-fault storm every step.
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$JEMALLOC" ] && export LD_PRELOAD=$JEMALLOC
exec /usr/bin/python3 -u tools/default-model/train.py --shards "$DATA/train" --eval-shards "$DATA/eval" --out models/winnow-tiny "$@"
