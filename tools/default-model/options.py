"""train.py's command line: every flag, grouped by stage, and the parameter line the model card records.

No torch here, so the flags can be listed and a recipe checked on a machine without the build's
Python packages:
    python3 tools/default-model/options.py --help
    python3 tools/default-model/options.py --shards S --eval-shards E --out O [flags ...]
The second prints the card's "Parameters" line for those flags; build.sh runs it (with the
recipe's flags) before anything else, so a mistyped flag fails at once.
"""
import argparse
import sys

# Stage B phase 2 (attention-entropy phase): steps and penalty weight.
STEPS_B2 = 400
ATTN_ENTROPY = 0.02

# The settings the model card lists under "Parameters", in its order (export.write_card).
CARD_KEYS = ["seed", "side_weight", "steps_a", "batch_a", "lr_a", "steps_a2", "lr_a2", "glob_weight", "steps_b", "steps_b1", "steps_b2", "lr_b2", "warmup_b2", "clip_frac_b2", "clip_last_b2", "rarity_b2", "entropy_family_scale", "family_weight_b2", "apart_weight_b2", "temporal_identity", "identity_init", "identity_lr_scale", "attn_entropy", "proj_aux", "still_batch", "clip_batch", "clip_frac", "lr_b", "vit_lr_scale", "threads"]


def card_parameters(train_args):
    """The model card's "Parameters" value for a run's vars(args): `seed=1234, side_weight=0.25, ...`."""
    return ", ".join(f"{k}={train_args.get(k)}" for k in CARD_KEYS)


def parse_family_scale(text):
    """argparse type: "F4=4,F2=2" -> {"F4": 4.0, "F2": 2.0}; a malformed part fails at parse time."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        fam, sep, k = part.partition("=")
        try:
            out[fam.strip()] = float(k)
            assert sep and fam.strip() and out[fam.strip()] >= 0
        except (ValueError, AssertionError):
            raise argparse.ArgumentTypeError(f"expected FAM=K with K >= 0, got {part!r}") from None
    return out


def build_parser(prog=None):
    ap = argparse.ArgumentParser(prog=prog, description="Trains, evaluates and exports winnow-tiny (tools/default-model/README.md).")
    data_flags = ap.add_argument_group("data and output", "Shards are folders written by `winnow synth --shards`; build.sh renders them.")
    data_flags.add_argument("--shards", required=True)
    data_flags.add_argument("--eval-shards", required=True)
    data_flags.add_argument("--out", required=True)
    data_flags.add_argument("--max-stills", type=int, default=None)
    data_flags.add_argument("--max-videos", type=int, default=None)
    run_flags = ap.add_argument_group("run")
    run_flags.add_argument("--work", default="tools/default-model/runs/latest")
    run_flags.add_argument("--seed", type=int, default=1234)
    run_flags.add_argument("--threads", type=int, default=2)
    stage_a_flags = ap.add_argument_group("stage A: the vision tower", "Phase A1 learns the dense labels, phase A2 adds the scene facts.")
    stage_a_flags.add_argument("--steps-a", type=int, default=1000)
    stage_a_flags.add_argument("--batch-a", type=int, default=32)
    stage_a_flags.add_argument("--lr-a", type=float, default=2e-3)
    stage_a_flags.add_argument("--steps-a2", type=int, default=1200, help="stage A phase 2 (0 = none): a fresh schedule from --lr-a2 with the scene-fact labels added at --glob-weight")
    stage_a_flags.add_argument("--lr-a2", type=float, default=1e-3)
    stage_a_flags.add_argument("--glob-weight", type=float, default=1.0)
    stage_a_flags.add_argument("--side-weight", type=float, default=0.0, help="phase A2: weight of a fourth scene fact, the side of the mid-line each object token's object lies on (0 = off; the shipped recipe uses 0.25; at 1.0 stage B learned far slower, docs/history/model-card-notes.md)")
    stage_a_flags.add_argument("--stop-after-a", action="store_true", help="train stage A on the stills, save WORK/stage_a.pt and exit (resume with --resume-a)")
    stage_b_flags = ap.add_argument_group("stage B: projector and LM, both phases", "Phase 1 is the first --steps-b1 steps of one --steps-b schedule.")
    stage_b_flags.add_argument("--steps-b", type=int, default=3000)
    stage_b_flags.add_argument("--steps-b1", type=int, default=3000, help="stage B phase 1: the first steps of the --steps-b schedule, LM loss only")
    stage_b_flags.add_argument("--still-batch", type=int, default=16)
    stage_b_flags.add_argument("--clip-batch", type=int, default=4)
    stage_b_flags.add_argument("--clip-frac", type=float, default=0.5)
    stage_b_flags.add_argument("--max-frames", type=int, default=30)
    stage_b_flags.add_argument("--lr-b", type=float, default=1.5e-3)
    stage_b_flags.add_argument("--vit-lr-scale", type=float, default=0.0, help="fine-tune the vision tower in stage B on still batches (0 = frozen; > 0 needs --no-cache-features)")
    stage_b_flags.add_argument("--cache-features", action=argparse.BooleanOptionalAction, default=True, help="stage B: run the frozen vision tower once over all frames (needs --vit-lr-scale 0)")
    stage_b_flags.add_argument("--extra-videos", action="append", default=[], help="stage B (both phases): also draw clips from the video shards in this folder (repeatable), e.g. `winnow synth --shards --video-mix apart-rich` ones")
    stage_b_flags.add_argument("--ckpt-every-b", type=int, default=250, help="stage B: steps between checkpoints (and resume states)")
    phase_2_flags = ap.add_argument_group("stage B phase 2", "A fresh schedule after phase 1, with the attention-entropy penalty and the answer weights.")
    phase_2_flags.add_argument("--steps-b2", type=int, default=STEPS_B2, help="stage B phase 2 (0 = none): a fresh schedule (optimizer, --warmup-b2, cosine from --lr-b2) with --attn-entropy and --proj-aux, videos from the first step")
    phase_2_flags.add_argument("--lr-b2", type=float, default=5e-4)
    phase_2_flags.add_argument("--warmup-b2", type=int, default=30)
    phase_2_flags.add_argument("--clip-frac-b2", type=float, default=0.25, help="stage B phase 2: share of clip batches (phase 1 has learned the videos; the stills carry most of the penalty's work)")
    phase_2_flags.add_argument("--clip-last-b2", type=float, default=0.5, help="stage B phase 2: share of clips that end at the video's last frame (the others end at a random frame; phase 1 uses 0.5). 0.9 with --steps-b2 800 --clip-frac-b2 0.5 lifted V3 to 90.7 %% but cost pruned video accuracy (docs/history/model-card-notes.md)")
    phase_2_flags.add_argument("--attn-entropy", type=float, default=ATTN_ENTROPY, help="stage B phase 2: weight of the question and answer tokens' mean attention entropy (nats) added to the loss; label-free, full token sequences")
    phase_2_flags.add_argument("--entropy-family-scale", type=parse_family_scale, default="", help="stage B phase 2: FAM=K,... multiplies --attn-entropy on those question families' rows (e.g. F4=4); empty = every family alike")
    phase_2_flags.add_argument("--family-weight-b2", type=parse_family_scale, default="", help="stage B phase 2: FAM=K,... multiplies the answer loss of those question families by K, stills and clips (default: none)")
    phase_2_flags.add_argument("--rarity-b2", type=float, default=0.0, help="stage B phase 2: weight the answers (stills and clips; the default V3 exists only in clips) of --rarity-families by (most common answer's count / its count) ** this, at most --rarity-cap (0 = off)")
    phase_2_flags.add_argument("--rarity-families", default="V3")
    phase_2_flags.add_argument("--rarity-cap", type=float, default=4.0)
    phase_2_flags.add_argument("--apart-weight-b2", type=float, default=1.0, help="stage B phase 2: multiplies the answer loss of the V3 questions whose objects were never all present in one frame (the answer exceeds the most of that shape seen together; 1 = off)")
    phase_2_flags.add_argument("--extra-videos-b2", action="append", default=[], help="stage B phase 2: also draw clips from the video shards in this folder (repeatable), e.g. `winnow synth --shards --video-mix apart-rich` ones; phase 1 never sees them")
    phase_2_flags.add_argument("--average-b2", type=float, default=0.0, help="stage B phase 2: also write WORK/stage_b2_last_avg.pt, the uniform average of the weights over the last this share of phase-2 steps (0 = off; the export uses the last weights either way)")
    phase_2_flags.add_argument("--proj-aux", type=float, default=0.0, help="stage B phase 2: weight of the dense labels read back from the projected tokens (ProjectorHeads; the export before the cell embedding used 0.5)")
    shape_flags = ap.add_argument_group("model")
    shape_flags.add_argument("--lm-layers", type=int, help="LM depth (default: model.LmConfig, 4; with --from-checkpoint, the checkpoint's)")
    shape_flags.add_argument("--lm-grow", default="", help="with --resume-b1: layer indices (of the --lm-layers-deep LM) to insert as new layers that start as identities, e.g. 4 appends one to a 4-layer phase-1 LM")
    shape_flags.add_argument("--temporal-identity", action="store_true", help="video frames carry each object token's appearance ordinal (model.TemporalIdentity, learned in stage B from zeros; with --resume-b1 a phase 2 adds it to a phase-1 model); a --from-checkpoint that holds one always uses it")
    shape_flags.add_argument("--identity-init", type=float, default=0.0, help="with --temporal-identity: start each ordinal's vector as a random direction of this norm (seeded; 0 = zeros, the phase-1 function). Object tokens' projected norm is ~18: zero-initialised vectors reached norm 0.2 after 500 steps and the LM ignored them")
    shape_flags.add_argument("--identity-lr-scale", type=float, default=1.0, help="with --temporal-identity: learning-rate multiplier of the ordinal vectors")
    resume_flags = ap.add_argument_group("resume, skip training", "Checkpoint paths are relative to the repository root (build.sh runs from there).")
    resume_flags.add_argument("--resume-a1", help="checkpoint after stage A phase 1 (WORK/stage_a1.pt) to run phase A2 and stage B from")
    resume_flags.add_argument("--resume-a", help="checkpoint after stage A to start from")
    resume_flags.add_argument("--resume-b1", help="checkpoint after stage B phase 1 (WORK/stage_b1.pt) to start phase 2 from")
    resume_flags.add_argument("--resume-b1-state", help="WORK/stage_b1_last_resume.pt (written every --ckpt-every-b steps of phase 1): continue phase 1 exactly where it stopped, then phase 2")
    resume_flags.add_argument("--from-checkpoint", help="skip training: evaluate and export this state dict")
    resume_flags.add_argument("--skip-train", action="store_true", help="export an untrained model (layout check)")
    evaluation_flags = ap.add_argument_group("evaluation")
    evaluation_flags.add_argument("--eval-stills", type=int, default=1000)
    evaluation_flags.add_argument("--eval-videos", type=int, default=100)

    return ap


def main(argv):
    """Parses train.py flags without training: exits 2 on a bad flag (argparse's message), else prints
    the card's Parameters line."""
    args = build_parser(prog="train.py").parse_args(argv)
    print("- Parameters: " + card_parameters(vars(args)))


if __name__ == "__main__":
    main(sys.argv[1:])
