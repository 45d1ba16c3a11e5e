#!/usr/bin/env bash
# Rebuilds models/winnow-tiny from scratch on a CPU: renders the training shards on first use, then
# trains, evaluates and exports with the shipped recipe (recipes/shipped.args). Stages, times and
# versions: README.md in this folder.
#   apt-get update && apt-get install -y python3-torch python3-onnx libopenblas0-pthread libjemalloc2
#   bash tools/default-model/build.sh [--recipe FILE] [--dry-run] [train.py flags ...]
# --recipe FILE: train.py flags to start from (default recipes/shipped.args; recipes/base.args is
#   train.py's own defaults). Further flags are appended after the recipe's, so they add to it or,
#   for a flag with one value, override it; paths in them are relative to the repository root.
# --dry-run: check the flags (options.py, no torch needed), print the card's Parameters line they
#   give and the commands a build would run, and stop.
# train.py's flags, grouped by stage: python3 tools/default-model/options.py --help
# DATA (default /tmp/winnow-default-model) holds the rendered shards.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RECIPE=$HERE/recipes/shipped.args
DRY_RUN=0
EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --recipe)
      [ $# -ge 2 ] || { echo "build.sh: --recipe needs a file" >&2; exit 2; }
      RECIPE=$2
      shift 2
      ;;
    --recipe=*) RECIPE=${1#--recipe=}; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
[ -f "$RECIPE" ] || { echo "build.sh: no recipe file $RECIPE" >&2; exit 2; }
# Words, not shell syntax: a quote would reach train.py as a literal character.
RECIPE_ARGS=()
while IFS= read -r line || [ -n "$line" ]; do
  line=${line%%#*}
  case $line in *[\"\'\\\$\`]*) echo "build.sh: $RECIPE: quotes, \$ and backslashes are not read: $line" >&2; exit 2 ;; esac
  read -r -a words <<<"$line"
  RECIPE_ARGS+=(${words[@]+"${words[@]}"})
done <"$RECIPE"
cd "$HERE/../.."
DATA=${DATA:-/tmp/winnow-default-model}
ARGS=(--shards "$DATA/train" --eval-shards "$DATA/eval" --out models/winnow-tiny ${RECIPE_ARGS[@]+"${RECIPE_ARGS[@]}"} ${EXTRA[@]+"${EXTRA[@]}"})
# A mistyped flag fails here, in a second, instead of after the shards are rendered.
/usr/bin/python3 tools/default-model/options.py "${ARGS[@]}"

# One line a shell can run again: words that need it quoted, the rest as they are.
show() {
  local out=() w
  for w in "$@"; do
    if [[ $w =~ ^[A-Za-z0-9_./=,:@%+-]+$ ]]; then out+=("$w"); else out+=("$(printf '%q' "$w")"); fi
  done
  echo "${out[*]}"
}
render() {
  [ -f "$1/meta.json" ] && return 0
  local cmd=(node --import tsx src/cli/index.ts synth --shards --out "$@")
  if [ "$DRY_RUN" = 1 ]; then show "${cmd[@]}"; else "${cmd[@]}"; fi
}
render "$DATA/train" --seed 1000 --stills 30000 --videos 2000
render "$DATA/eval" --seed 2000 --stills 1000 --videos 100
# jemalloc keeps freed tensor memory instead of returning it with munmap (glibc's behaviour for
# blocks > 32 MB), and with decay off it never hands pages back: otherwise every step page-faults its
# activations in again (measured: 40-50 % of CPU time in the kernel, steps 2x slower).
ENV=()
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$JEMALLOC" ] && ENV+=(LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1)
# torch parallelizes with OpenMP; OpenBLAS's own thread pool on top of it oversubscribes the two
# cores and spins in sched_yield (still steps 1.85 s -> 1.30 s with one BLAS thread).
ENV+=(OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE)
TRAIN=(/usr/bin/python3 -u tools/default-model/train.py "${ARGS[@]}")
if [ "$DRY_RUN" = 1 ]; then
  show export "${ENV[@]}"
  show "${TRAIN[@]}"
  exit 0
fi
export "${ENV[@]}"
exec "${TRAIN[@]}"
