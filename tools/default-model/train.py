"""Trains, evaluates and exports winnow-tiny.

    /usr/bin/python3 tools/default-model/train.py --shards DIR --eval-shards DIR --out models/winnow-tiny

build.sh runs it with the shipped recipe (recipes/shipped.args); the flags are in options.py.

Stage A: the vision tower learns dense labels the synthetic world gives for free (each patch's object
class, object centres, coverage, patch coordinates; the image's object set from [CLS]; and, on every
object token, scene facts: objects of its shape, objects in all, its place from the left).
Stage B: the vision tower is frozen (as LLaVA freezes CLIP) and the projector + LM learn the world's
questions on full token sequences (no token dropping: pruning stays training-free).
"""
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import Shards, to_pixels  # noqa: E402
from model import NUM_CLASSES, LmConfig, VitConfig, WinnowTiny, pool2x2, track_ordinals  # noqa: E402
from options import build_parser  # noqa: E402
from tok import NUMBERS, Tokenizer  # noqa: E402

FAMILIES = ["F1", "F2", "F3", "F4", "C1", "V1", "V2", "V3"]
NEG = -1e9


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def class_weights():
    """Cross-entropy weights of the 19 patch classes: background counts 0.2 (most patches are background)."""
    w = torch.ones(NUM_CLASSES)
    w[0] = 0.2
    return w


def patch_coords(g):
    """[1, g*g, 2] (row, column) of every patch, scaled to [0, 1]."""
    return torch.stack(torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij"), -1).reshape(1, g * g, 2).float() / (g - 1)


IGNORE = -100
# Heads added after a checkpoint was saved start from their seeded init when it is loaded.
NEW_HEADS = ("heads.count_head.", "heads.total_head.", "heads.rank_head.")


def load_checkpoint(model, path, may_lack=()):
    """Loads a state dict that may lack the NEW_HEADS and the given key prefixes (modules added after
    it was saved, or not trained yet at that point: they keep their seeded init); anything else
    missing or unexpected is an error."""
    missing, unexpected = model.load_state_dict(torch.load(path) if isinstance(path, str) else path, strict=False)
    assert not unexpected and all(k.startswith(tuple(may_lack) + NEW_HEADS) for k in missing), (missing, unexpected)


def lm_depth(sd):
    """How many LM layers a state dict holds."""
    return len({k.split(".")[2] for k in sd if k.startswith("lm.layers.")})


def grow_lm(sd, new_at, model):
    """A state dict of a shallower LM, renumbered so that its layers skip the indices in new_at; those
    layers keep the model's seeded init with their attention and MLP output projections zeroed, so the
    grown LM computes exactly what the shallower one did (they start as identities on the residual)."""
    depth = lm_depth(sd)
    keep = [i for i in range(len(model.lm.layers)) if i not in new_at]
    if depth != len(keep):
        raise SystemExit(f"--lm-grow: the checkpoint has {depth} LM layers; {len(model.lm.layers)} - {len(new_at)} expected")
    out = {}
    for k, v in sd.items():
        if k.startswith("lm.layers."):
            parts = k.split(".")
            parts[2] = str(keep[int(parts[2])])
            k = ".".join(parts)
        out[k] = v
    for i in new_at:
        for k, v in model.lm.layers[i].state_dict().items():
            out[f"lm.layers.{i}.{k}"] = torch.zeros_like(v) if k in ("o.weight", "down.weight") else v.clone()
    return out


def centre_columns(lab, g):
    """(patch classes [S, N] int64, centre column of each class's object [S, NUM_CLASSES], 10**6
    where the image has no centre patch of that class)."""
    cls = lab[..., 0].astype(np.int64)
    s_idx, n_idx = np.nonzero(lab[..., 1] > 0)
    col = np.full((cls.shape[0], NUM_CLASSES), 10**6, np.int64)
    col[s_idx, cls[s_idx, n_idx]] = n_idx % g
    return cls, col


def global_labels(lab, g):
    """Per-patch scene facts for the object tokens, from the patch labels alone: [S, N] int64 each of
    (objects of this token's shape, 1..3), (objects in the image, 1..3) and (this token's object's
    place from the left by centre column, 0..2); IGNORE on background, and for the place when another
    object's centre shares the column (the order is then below the labels' resolution).

    Why: a token that overlaps an object otherwise says only what is under it, so "how many" and
    "left to right" must be assembled by the LM from attention shares over the whole frame, and
    those shares change when the background tokens are gone. A ViT token sees the whole image (as
    CLIP's do); these labels make it carry the scene facts itself. Full images, no dropping.
    Objects present at once never share shape and colour (docs/default-model.md), so a patch's class
    names its object."""
    cls, col = centre_columns(lab, g)
    S = cls.shape[0]
    pres = col < g
    pres[:, 0] = False
    shape_of = np.concatenate([[0], (np.arange(1, NUM_CLASSES) - 1) // 6 + 1])
    per_shape = np.zeros((S, 4), np.int64)
    for sh in range(1, 4):
        per_shape[:, sh] = pres[:, shape_of == sh].sum(1)
    total = pres.sum(1)
    before = (pres[:, None, :] & (col[:, None, :] < col[:, :, None])).sum(2)
    tie = (pres[:, None, :] & (col[:, None, :] == col[:, :, None])).sum(2) > 1
    obj = cls > 0
    rows = np.arange(S)[:, None]
    count = np.where(obj, np.minimum(per_shape[rows, shape_of[cls]], 3), IGNORE)
    tot = np.where(obj, np.minimum(total, 3)[:, None], IGNORE)
    rank = np.where(obj & ~tie[rows, cls], np.minimum(before[rows, cls], 2), IGNORE)
    return count, tot, rank


def side_labels(lab, g):
    """[S, N] int64: the side of the vertical mid-line (0 left, 1 right) that each object token's
    object's centre lies on; IGNORE on background. The canvas is landscape, so "fit" padding adds rows
    only and the mid-line is the boundary between columns g/2-1 and g/2: the centre patch's column
    gives the side exactly.

    Why: with only the object tokens kept, the shipped export answers "left" for 48 of 56 lone objects
    on the right (MODEL_CARD notes): its LM reads the side against the other tokens' places. Taught
    at the glob weight this fact slowed stage B badly (MODEL_CARD notes); --side-weight sets it apart."""
    cls, col = centre_columns(lab, g)
    c = col[np.arange(cls.shape[0])[:, None], cls]
    return np.where((cls > 0) & (c < g), (c >= g // 2).astype(np.int64), IGNORE)


# ---------------------------------------------------------------- stage A
def stage_a(model, data, steps, batch, lr, rng, glob_weight=0.0, warmup=50, tag="A", side_head=None, side_weight=0.0):
    vit, heads = model.vit, model.heads
    g = data.grid
    # Stills only: each has its own background and layout (video frames of one video share both), and
    # stage A can then start while the video shards are still being rendered (--stop-after-a).
    n_s = len(data.still_rgb)
    coords = patch_coords(g)
    # (head, per-patch targets of all stills) for the scene facts; only phase A2 trains them.
    glob = [(glob_weight, head, torch.from_numpy(a)) for head, a in zip((heads.count_head, heads.total_head, heads.rank_head), global_labels(data.still_lab, g))] if glob_weight > 0 else []
    # The side fact has its own weight and its own head, built outside the model (so that the shipped
    # recipe's initialisation is unchanged) and not exported.
    side = side_head is not None and side_weight > 0
    if side:
        glob.append((side_weight, side_head, torch.from_numpy(side_labels(data.still_lab, g))))
    params = list(vit.parameters()) + list(heads.parameters()) + (list(side_head.parameters()) if side else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    t0 = time.time()
    for step in range(steps):
        lr_now = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for pg in opt.param_groups:
            pg["lr"] = lr_now
        idx = rng.integers(0, n_s, size=batch)
        rgb = data.still_rgb[idx]
        lab = torch.from_numpy(data.still_lab[idx]).long()
        feat, cls_final = vit(to_pixels(rgb))
        h = heads.ln(feat[:, 1:])
        cls_t, centre_t, cov_t = lab[..., 0], lab[..., 1].float(), lab[..., 2].float() / 255
        w = class_weights()
        loss_cls = F.cross_entropy(heads.cls_head(h).reshape(-1, NUM_CLASSES), cls_t.reshape(-1), weight=w)
        loss_ctr = F.binary_cross_entropy_with_logits(heads.centre_head(h).squeeze(-1), centre_t, pos_weight=torch.tensor(10.0))
        loss_cov = F.mse_loss(torch.sigmoid(heads.cov_head(h).squeeze(-1)), cov_t)
        loss_xy = F.mse_loss(heads.xy_head(h), coords.expand(len(idx), -1, -1))
        present = torch.zeros(len(idx), NUM_CLASSES)
        present.scatter_(1, cls_t, 1.0)
        loss_set = F.binary_cross_entropy_with_logits(heads.set_head(cls_final), present[:, 1:])
        # Shape is the hard part (colour is learned at once): a 4-way shape loss, weighted up at object centres.
        shape_t = torch.where(cls_t > 0, (cls_t - 1) // 6 + 1, torch.zeros_like(cls_t))
        sw = 1.0 + 4.0 * centre_t
        loss_shape = (F.cross_entropy(heads.shape_head(h).reshape(-1, 4), shape_t.reshape(-1), reduction="none") * sw.reshape(-1)).sum() / sw.sum()
        ti = torch.from_numpy(idx)
        loss_glob = sum(wt * F.cross_entropy(head(h).reshape(-1, head.out_features), t[ti].reshape(-1), ignore_index=IGNORE) for wt, head, t in glob) if glob else torch.zeros(())
        loss = loss_cls + loss_ctr + loss_cov + loss_xy + loss_set + loss_shape + loss_glob
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            with torch.no_grad():
                pred = heads.cls_head(h).argmax(-1)
                fg = cls_t > 0
                acc_fg = (pred[fg] == cls_t[fg]).float().mean().item() if fg.any() else 0
                ctr = centre_t > 0
                sp = heads.shape_head(h).argmax(-1)
                acc_shape = (sp[ctr] == shape_t[ctr]).float().mean().item() if ctr.any() else 0
                accs = []
                for _, head, t in glob:
                    tt = t[ti]
                    m = tt != IGNORE
                    accs.append(f"{(head(h).argmax(-1)[m] == tt[m]).float().mean().item() if m.any() else 0:.3f}")
            facts = f" glob {loss_glob.item():.3f} count/total/rank{'/side' if len(glob) > 3 else ''}-acc {'/'.join(accs)}" if glob else ""
            log(f"{tag} {step}/{steps} loss {loss.item():.4f} cls {loss_cls.item():.3f} ctr {loss_ctr.item():.3f} set {loss_set.item():.3f} fg-acc {acc_fg:.3f} centre-shape-acc {acc_shape:.3f}{facts} {time.time()-t0:.0f}s")


# ---------------------------------------------------------------- sequences
class Seq:
    """One packed training sequence: a visual prefix (frames) and several question blocks."""

    def __init__(self):
        self.ids, self.pos, self.block, self.target, self.weight = [], [], [], [], []
        self.visual = []  # tensors [n, D] in order of appearance
        self.qfam = []  # family of each question block
        self.next_pos = 0

    def text(self, ids, block=0, targets=None, weight=1.0):
        for i, t in enumerate(ids):
            self.ids.append(t)
            self.pos.append(self.next_pos)
            self.block.append(block)
            self.target.append(-100 if targets is None else targets[i])
            self.weight.append(weight)
            self.next_pos += 1

    def frame(self, tok, seconds, feats):
        """Marker text, then the frame's visual tokens, all at one shared position."""
        self.text(tok.marker(seconds))
        n = feats.shape[0]
        self.ids.extend([tok.image] * n)
        self.pos.extend([self.next_pos] * n)
        self.block.extend([0] * n)
        self.target.extend([-100] * n)
        self.weight.extend([1.0] * n)
        self.visual.append(feats)
        self.next_pos += 1

    def questions(self, tok, qas, answer_weight=None):
        """answer_weight(qa) -> the loss weight of that answer's tokens (default 1)."""
        base = self.next_pos
        for j, qa in enumerate(qas):
            self.next_pos = base  # every question restarts right after the visual prefix
            q = tok.question(qa["question"])
            a = tok.answer(qa["answer"])
            ids = q + a
            # Predict answer token k from the position before it.
            targets = [-100] * (len(q) - 1) + a + [-100]
            self.text(ids, block=j + 1, targets=targets, weight=answer_weight(qa) if answer_weight else 1.0)
            self.qfam.append(qa["id"])


def collate(seqs, lm, visual_keep=None):
    """Builds embeddings, positions, an additive attention mask, targets and their loss weights for a batch."""
    B = len(seqs)
    S = max(len(s.ids) for s in seqs)
    ids = torch.zeros(B, S, dtype=torch.long)
    pos = torch.zeros(B, S, dtype=torch.long)
    block = torch.full((B, S), -1, dtype=torch.long)
    target = torch.full((B, S), -100, dtype=torch.long)
    weight = torch.zeros(B, S)
    for b, s in enumerate(seqs):
        n = len(s.ids)
        ids[b, :n] = torch.tensor(s.ids)
        pos[b, :n] = torch.tensor(s.pos)
        block[b, :n] = torch.tensor(s.block)
        target[b, :n] = torch.tensor(s.target)
        weight[b, :n] = torch.tensor(s.weight)
    emb = lm.embed(ids)
    is_img = ids == Tokenizer().image
    vis = torch.cat([torch.cat(s.visual, 0) for s in seqs], 0) if any(s.visual for s in seqs) else None
    if vis is not None:
        emb = emb.masked_scatter(is_img.unsqueeze(-1), vis)
    valid = block >= 0
    if visual_keep is not None:
        valid = valid & ~(is_img & ~visual_keep)
    i = torch.arange(S)
    causal = i.view(1, S, 1) >= i.view(1, 1, S)
    same = (block.view(B, 1, S) == 0) | (block.view(B, 1, S) == block.view(B, S, 1))
    allowed = causal & same & valid.view(B, 1, S)
    allowed = allowed | torch.eye(S, dtype=torch.bool).view(1, S, S)  # padding rows attend to themselves
    mask = torch.zeros(B, 1, S, S).masked_fill(~allowed.unsqueeze(1), NEG)
    return emb, pos, mask, target, block, weight


def still_seq(tok, feats, qas, answer_weight=None):
    s = Seq()
    s.text([tok.bos])
    s.frame(tok, 0, feats)
    s.questions(tok, qas, answer_weight)
    return s


def clip_seq(tok, frame_feats, qas, answer_weight=None):
    s = Seq()
    s.text([tok.bos])
    for k, f in enumerate(frame_feats):
        s.frame(tok, k, f)
    s.questions(tok, qas, answer_weight)
    return s


def answer_rarity(data, families, power, cap):
    """Loss weights of the clip answers of `families` by how rare each answer is among those questions
    on all frames of the training videos: (most common answer's count / this answer's count) ** power,
    at most `cap`. Video counting answers are skewed towards "zero" and "one" (V3 "three" is 2.4 % of
    its questions), and the model under-counts long videos."""
    counts = {}
    for v in data.videos:
        for fr in v["frames"]:
            for qa in fr["qa"]:
                if qa["id"] in families:
                    counts.setdefault(qa["id"], {}).setdefault(qa["answer"], 0)
                    counts[qa["id"]][qa["answer"]] += 1
    weights = {}
    for fam, c in counts.items():
        top = max(c.values())
        for ans, k in c.items():
            weights[(fam, ans)] = min(cap, (top / k) ** power)
    log("answer rarity weights", json.dumps({f"{f}:{a}": round(w, 2) for (f, a), w in sorted(weights.items())}))
    return lambda qa: weights.get((qa["id"], qa["answer"]), 1.0)


def family_weight(scale, inner=None):
    """Multiplies the answer loss weight of the question families in `scale` ({"F4": 3.0}), on stills
    and clips alike, on top of `inner` (the rarity weights or None). None when there is nothing to
    weight, so the default recipe draws and weighs exactly as before."""
    if not scale:
        return inner
    log("answer family weights", json.dumps(scale))
    return lambda qa: scale.get(qa["id"], 1.0) * (inner(qa) if inner else 1.0)


def apart_counts(data):
    """Marks the V3 questions (`how many {shape}s appeared?`) whose answer exceeds the most objects of
    that shape present together in any one frame up to the question's frame (qa["apart"] = True).
    After phase 1 the model read the largest count of the shape in a single frame: on the held-out
    videos it answered 252 of 272 V3 questions right where that equals the answer, 5 of 28 where
    the objects came one after another. Returns how many questions it marked."""
    marked = total = 0
    for v in data.videos:
        objs = v["objects"]
        most = {}
        for fr in v["frames"]:
            t = fr["tMs"]
            now = {}
            for o in objs:
                if o["appearMs"] <= t < o["leaveMs"]:
                    now[o["shape"]] = now.get(o["shape"], 0) + 1
            for shape, k in now.items():
                most[shape] = max(most.get(shape, 0), k)
            for qa in fr["qa"]:
                if qa["id"] != "V3":
                    continue
                total += 1
                shape = qa["question"].split()[2][:-1]
                if NUMBERS.index(qa["answer"]) > most.get(shape, 0):
                    qa["apart"] = True
                    marked += 1
    log(f"V3 questions counting objects that were never present together: {marked} of {total}")
    return marked


def apart_weight(scale, inner=None):
    """Multiplies the answer loss of the questions apart_counts marked by `scale`, on top of `inner`."""
    if scale == 1.0:
        return inner
    return lambda qa: (scale if qa.get("apart") else 1.0) * (inner(qa) if inner else 1.0)


def pick_still_qas(qa, rng, cap=12):
    qa = list(qa)
    rng.shuffle(qa)
    return qa[:cap]


def pick_clip_qas(qa, rng, nv=7, nf=3):
    v = [q for q in qa if q["id"].startswith("V")]
    f = [q for q in qa if not q["id"].startswith("V")]
    rng.shuffle(v)
    rng.shuffle(f)
    return v[:nv] + f[:nf]


class FeatureCache:
    """Feature-layer patch tokens of every training frame, computed once by the frozen vision tower
    (float16, [frames, N, Dv]). Stage B then costs the projector + LM only: a clip of 30 frames no
    longer runs the tower 30 times per step, which roughly halves stage B on this CPU."""

    def __init__(self, model, data, batch=128, path=None):
        t0 = time.time()
        # A saved cache is reused only for the very same vision tower and frame counts.
        key = [float(sum(p.double().sum() for p in model.vit.state_dict().values())), len(data.still_rgb), len(data.video_rgb)]
        if path and os.path.exists(path):
            saved = torch.load(path)
            if saved["key"] == key:
                self.still, self.video = saved["still"], saved["video"]
                log(f"feature cache: loaded {path}")
                return
        model.eval()
        self.still = self._run(model, data.still_rgb, batch)
        self.video = self._run(model, data.video_rgb, batch)
        model.train()
        log(f"feature cache: {len(self.still)} stills + {len(self.video)} video frames in {time.time()-t0:.0f}s")
        if path:
            torch.save({"key": key, "still": self.still, "video": self.video}, path)

    @staticmethod
    @torch.no_grad()
    def _run(model, rgb, batch):
        n = len(rgb)
        out = None
        for start in range(0, n, batch):
            feat, _ = model.vit(to_pixels(rgb[start : start + batch]))
            patches = feat[:, 1:].to(torch.float16)
            if out is None:
                out = torch.empty((n,) + tuple(patches.shape[1:]), dtype=torch.float16)
            out[start : start + len(patches)] = patches
        return out if out is not None else torch.empty(0)


def features(model, rgb, pool, grad_vit=False, aux=None, cached=None):
    """Projected tokens of frames. With grad_vit the vision tower is fine-tuned through them, and the
    dense labels of stage A (passed in `aux`) stay as an auxiliary loss so the features stay grounded.
    `cached`: the frames' feature-layer patch tokens from a FeatureCache (frozen tower); rgb unused."""
    if cached is not None:
        patches = cached.float()
    else:
        with torch.set_grad_enabled(grad_vit and torch.is_grad_enabled()):
            feat, _ = model.vit(to_pixels(rgb))
            patches = feat[:, 1:]
    if aux is not None and grad_vit:
        lab = torch.from_numpy(aux["labels"]).long()
        h = model.heads.ln(patches)
        w = class_weights()
        aux["loss"] = F.cross_entropy(model.heads.cls_head(h).reshape(-1, NUM_CLASSES), lab[..., 0].reshape(-1), weight=w) + F.binary_cross_entropy_with_logits(
            model.heads.centre_head(h).squeeze(-1), lab[..., 1].float(), pos_weight=torch.tensor(10.0)
        )
        cls_t = lab[..., 0]
        shape_t = torch.where(cls_t > 0, (cls_t - 1) // 6 + 1, torch.zeros_like(cls_t))
        aux["loss"] = aux["loss"] + F.cross_entropy(model.heads.shape_head(h).reshape(-1, 4), shape_t.reshape(-1))
    proj = model.projector(patches)
    return pool2x2(proj, model.vit.grid) if pool else proj


def clip_features(model, rgb, cached=None):
    """Pooled projected tokens of a video's frames from its first frame (clips always start there, as
    the runtime's tracker does). With a temporal identity, each object token gets its ordinal's vector
    (model.track_ordinals over the tower's own class predictions, never the labels) before pooling,
    exactly as the runtime adds it. The tower is frozen here (clips never fine-tune it)."""
    with torch.no_grad():
        if cached is not None:
            patches = cached.float()
        else:
            feat, _ = model.vit(to_pixels(rgb))
            patches = feat[:, 1:]
        ordinals = torch.from_numpy(track_ordinals(model.patch_classes(patches).numpy())) if model.identity is not None else None
    proj = model.projector(patches)
    if ordinals is not None:
        proj = proj + model.identity(ordinals)
    return pool2x2(proj, model.vit.grid)


def entropy_row_weights(seqs, block, family_scale):
    """[B,S] weights of the question/answer rows in the entropy mean: 1, or family_scale[family] for
    the rows of that family's question blocks."""
    rows = (block > 0).float()
    if not family_scale:
        return rows
    for b, s in enumerate(seqs):
        for j, fam in enumerate(s.qfam):
            if fam in family_scale:
                rows[b][block[b] == j + 1] = family_scale[fam]
    return rows


def lm_loss(model, seqs, stats=None, family_scale=None):
    """Next-token loss on the answers. With `stats` (a dict) also the mean attention entropy of the
    question and answer tokens over all layers and heads, in stats["entropy"] (a tensor with grad);
    `family_scale` weights some question families' rows in that mean."""
    emb, pos, mask, target, block, weight = collate(seqs, model.lm)
    layers = model.lm.layers
    if stats is not None:
        rows = entropy_row_weights(seqs, block, family_scale)
        for layer in layers:
            layer.entropy_rows = rows
    try:
        logits, _ = model.lm(emb, pos, mask)
        if stats is not None:
            stats["entropy"] = torch.stack([layer.entropy for layer in layers]).mean()
    finally:
        for layer in layers:
            layer.entropy_rows = layer.entropy = None
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none")
    w = weight.reshape(-1) * (target.reshape(-1) != -100)
    # A weighted mean: with every weight 1 this is the plain mean over answer tokens.
    return (ce * w).sum() / w.sum().clamp_min(1e-9)


def proj_aux_loss(model, proj, labels, grid):
    """Dense labels read back from the projected tokens by linear probes (ProjectorHeads)."""
    lab = torch.from_numpy(labels).long()
    w = class_weights()
    ph = model.proj_heads
    coords = patch_coords(grid)
    loss_cls = F.cross_entropy(ph.cls_head(proj).reshape(-1, NUM_CLASSES), lab[..., 0].reshape(-1), weight=w)
    loss_xy = F.mse_loss(ph.xy_head(proj), coords.expand(proj.shape[0], -1, -1))
    return loss_cls + 10.0 * loss_xy


def make_still_batch(model, tok, data, idx, rng, grad_vit=False, aux=None, cache=None, proj_aux=None, answer_weight=None):
    if aux is not None:
        aux["labels"] = data.still_lab[idx]
    if cache is not None:
        feats = features(model, None, pool=False, cached=cache.still[torch.from_numpy(idx)])
    else:
        feats = features(model, data.still_rgb[idx], pool=False, grad_vit=grad_vit, aux=aux)
    if proj_aux is not None:
        proj_aux["loss"] = proj_aux_loss(model, feats, data.still_lab[idx], data.grid)
    return [still_seq(tok, feats[j], pick_still_qas(data.stills[i]["qa"], rng), answer_weight) for j, i in enumerate(idx)]


def make_clip_batch(model, tok, data, vids, rng, max_frames, cache=None, answer_weight=None, last_frac=0.5):
    seqs = []
    for vi in vids:
        v = data.videos[vi]
        n = min(v["numFrames"], max_frames)
        # Written so that last_frac 0.5 draws the very same random numbers as the recipe always did.
        end = rng.randrange(n) if rng.random() < 1.0 - last_frac else n - 1
        lo, hi = v["globalOffset"], v["globalOffset"] + end + 1
        feats = clip_features(model, None if cache is not None else data.video_rgb[lo:hi], cached=cache.video[lo:hi] if cache is not None else None)
        seqs.append(clip_seq(tok, list(feats), pick_clip_qas(v["frames"][end]["qa"], rng), answer_weight))
    return seqs


@dataclass
class StageB:
    """The settings of one stage-B schedule (phase 1, or phase 2 on a fresh schedule); main() fills
    them from the flags.

    vit_lr_scale > 0 fine-tunes the vision tower on still batches (clip batches keep it fixed:
    backpropagating through 30 frames costs too much here). cache_features (frozen tower only) runs the
    tower once over all training frames instead of in every step.

    Every ckpt_every steps stage_b also writes <ckpt_name>_resume.pt: the model, the optimizer's
    moments, the batch sampler's state and the next step.

    average_from (a step) also keeps the uniform average of the trained weights over every step from
    there on and writes it to <ckpt_name>_avg.pt at the end (weight averaging, as in SWA)."""

    steps: int  # length of the learning-rate schedule (warm-up, cosine)
    still_batch: int
    clip_batch: int
    clip_frac_max: float  # share of clip batches (from 20 % of the steps on, or from the first with clip_from_start)
    lr: float
    max_frames: int
    ckpt_dir: Optional[str] = None
    ckpt_every: int = 250
    vit_lr_scale: float = 0.0
    cache_features: bool = False
    proj_aux_weight: float = 0.0
    clip_from_start: bool = False
    stop_at: Optional[int] = None  # stop before this step (phase 1 ends inside its schedule)
    ckpt_name: str = "stage_b_last.pt"
    attn_entropy: float = 0.0
    warmup: int = 100
    answer_weight: Optional[Callable[[dict], float]] = None
    clip_last_frac: float = 0.5
    entropy_scale: Optional[Dict[str, float]] = None
    average_from: Optional[int] = None
    identity_lr_scale: float = 1.0


def stage_b(model, tok, data, plan, rng, resume=None):
    """Trains the projector and LM (and the temporal identity, if any) on one StageB schedule, drawing
    batches from `rng`. `resume` (a dict written every plan.ckpt_every steps) continues the schedule
    from there, batch for batch as if it had not stopped: a stage B outlasts a session on this machine."""
    finetune = plan.vit_lr_scale > 0
    if plan.cache_features and finetune:
        raise ValueError("--cache-features needs a frozen vision tower (--vit-lr-scale 0)")
    model.vit.freeze_bn = True
    model.train()
    for p in model.vit.parameters():
        p.requires_grad_(finetune)
    params = list(model.projector.parameters()) + list(model.lm.parameters()) + (list(model.proj_heads.parameters()) if plan.proj_aux_weight > 0 else [])
    groups = [{"params": params, "scale": 1.0}]
    if model.identity is not None:
        groups.append({"params": list(model.identity.parameters()), "scale": plan.identity_lr_scale})
        params = params + groups[-1]["params"]
    if finetune:
        groups.append({"params": list(model.vit.parameters()) + list(model.heads.parameters()), "scale": plan.vit_lr_scale})
        params = params + groups[1]["params"]
    opt = torch.optim.AdamW(groups, lr=plan.lr, weight_decay=0.01, betas=(0.9, 0.98))
    cache = FeatureCache(model, data, path=os.path.join(plan.ckpt_dir, "feature_cache.pt") if plan.ckpt_dir else None) if plan.cache_features else None
    model.train()
    t0 = time.time()
    ema = {}
    first = 0
    if resume is not None:
        opt.load_state_dict(resume["opt"])
        rng.setstate(resume["rng"])
        ema = dict(resume["ema"])
        first = resume["step"]
        log(f"B resumed at step {first}/{plan.steps}")
    resume_path = os.path.join(plan.ckpt_dir, plan.ckpt_name[: -len(".pt")] + "_resume.pt") if plan.ckpt_dir else None
    if plan.average_from is not None and resume is not None:
        raise ValueError("weight averaging does not survive a resume")
    avg, n_avg = None, 0
    for step in range(first, plan.steps):
        lr_now = plan.lr * min(1.0, (step + 1) / plan.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / plan.steps)))
        for pg in opt.param_groups:
            pg["lr"] = lr_now * pg["scale"]
        # Videos come in after the model has learned to read single frames.
        if plan.stop_at is not None and step >= plan.stop_at:
            break
        clip_frac = plan.clip_frac_max if plan.clip_from_start or step >= plan.steps * 0.2 else 0.0
        if len(data.videos) and rng.random() < clip_frac:
            kind = "clip"
            seqs = make_clip_batch(model, tok, data, [rng.randrange(len(data.videos)) for _ in range(plan.clip_batch)], rng, plan.max_frames, cache, plan.answer_weight, plan.clip_last_frac)
        else:
            kind = "still"
            idx = np.array([rng.randrange(len(data.stills)) for _ in range(plan.still_batch)])
            aux = {} if finetune else None
            pa = {} if plan.proj_aux_weight > 0 else None
            seqs = make_still_batch(model, tok, data, idx, rng, grad_vit=finetune, aux=aux, cache=cache, proj_aux=pa, answer_weight=plan.answer_weight)
        st = {} if plan.attn_entropy > 0 else None
        loss = lm_loss(model, seqs, st, plan.entropy_scale)
        if st is not None:
            ema["entropy"] = st["entropy"].item() if "entropy" not in ema else 0.95 * ema["entropy"] + 0.05 * st["entropy"].item()
            loss = loss + plan.attn_entropy * st["entropy"]
        if kind == "still" and plan.proj_aux_weight > 0:
            ema["proj_aux"] = pa["loss"].item() if "proj_aux" not in ema else 0.95 * ema["proj_aux"] + 0.05 * pa["loss"].item()
            loss = loss + plan.proj_aux_weight * pa["loss"]
        if kind == "still" and finetune:
            loss = loss + 0.3 * aux["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if plan.average_from is not None and step >= plan.average_from:
            with torch.no_grad():
                # Only what this stage trains: the frozen tower would average to itself every step.
                if avg is None:
                    avg = {k: p.detach().double() for k, p in model.named_parameters() if p.requires_grad}
                    n_avg = 1
                else:
                    n_avg += 1
                    for k, p in model.named_parameters():
                        if k in avg:
                            avg[k] += (p.detach().double() - avg[k]) / n_avg
        ema[kind] = loss.item() if kind not in ema else 0.95 * ema[kind] + 0.05 * loss.item()
        if plan.ckpt_dir and step > 0 and step % plan.ckpt_every == 0:
            torch.save(model.state_dict(), os.path.join(plan.ckpt_dir, plan.ckpt_name))
            tmp_path = resume_path + ".tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(), "ema": ema, "step": step + 1, "steps": plan.steps}, tmp_path)
            os.replace(tmp_path, resume_path)
        if step % 50 == 0 or step == plan.steps - 1:
            log(f"B {step}/{plan.steps} {kind} loss {loss.item():.4f} ema {json.dumps({k: round(v, 4) for k, v in ema.items()})} lr {lr_now:.2e} {time.time()-t0:.0f}s")
    if avg is not None and plan.ckpt_dir:
        sd = model.state_dict()
        torch.save({k: (avg[k].to(v.dtype) if k in avg else v) for k, v in sd.items()}, os.path.join(plan.ckpt_dir, plan.ckpt_name[: -len(".pt")] + "_avg.pt"))
        log(f"B weights averaged over the last {n_avg} steps -> {plan.ckpt_name[: -len('.pt')]}_avg.pt")


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def score(model, seqs, visual_keep=None):
    """Teacher-forced exact match per question = greedy-decoding exact match (every answer token and
    the eos must be the argmax given the correct prefix)."""
    emb, pos, mask, target, block, _ = collate(seqs, model.lm, visual_keep)
    logits, _ = model.lm(emb, pos, mask)
    pred = logits.argmax(-1)
    out = []
    for b, s in enumerate(seqs):
        for j, fam in enumerate(s.qfam):
            sel = (block[b] == j + 1) & (target[b] != -100)
            out.append((fam, bool((pred[b][sel] == target[b][sel]).all())))
    return out


def tally(results):
    acc = {}
    for fam in FAMILIES:
        r = [ok for f, ok in results if f == fam]
        if r:
            acc[fam] = round(100.0 * sum(r) / len(r), 2)
    frame = [ok for f, ok in results if f in ("F1", "F2", "F3", "F4")]
    if frame:
        acc["F"] = round(100.0 * sum(frame) / len(frame), 2)
    vid = [ok for f, ok in results if f.startswith("V")]
    if vid:
        acc["V"] = round(100.0 * sum(vid) / len(vid), 2)
    return acc


@torch.no_grad()
def evaluate(model, tok, data, max_stills, max_videos, seed=0):
    model.eval()
    rng = random.Random(seed)
    rng_min1 = random.Random(seed + 1)  # its own stream: the random-20 % draws stay as they were
    res = {"all": [], "oracle": [], "oracle_min1": [], "random20": []}
    kept_oracle = []
    n = min(max_stills, len(data.stills))
    g2 = data.grid * data.grid
    for start in range(0, n, 32):
        idx = np.arange(start, min(n, start + 32))
        feats = features(model, data.still_rgb[idx], pool=False)
        seqs = [still_seq(tok, feats[j], data.stills[i]["qa"]) for j, i in enumerate(idx)]
        res["all"] += score(model, seqs)
        # Oracle: keep the tokens that overlap objects (ground truth), everything else masked out;
        # with frame-shared positions that is exactly what pruning those tokens does.
        S = max(len(s.ids) for s in seqs)
        keep_o = torch.zeros(len(seqs), S, dtype=torch.bool)
        keep_r = torch.zeros(len(seqs), S, dtype=torch.bool)
        # The same oracle as the runtime applies pruning: a frame keeps at least one token (the
        # pruner's minKeep defaults to 1), so an image with no object keeps one background token
        # instead of vanishing from the prompt, an input neither training nor the runtime produces.
        empty = []  # (row, position of the one token kept) of images with no object
        for b, i in enumerate(idx):
            lab = data.still_lab[i]
            ov = (lab[:, 0] > 0) | (lab[:, 2] > 0)
            kept_oracle.append(ov.mean())
            first = seqs[b].ids.index(tok.image)
            keep_o[b, first : first + g2] = torch.from_numpy(ov)
            if not ov.any():
                empty.append((b, first + rng_min1.randrange(g2)))
            r = np.zeros(g2, bool)
            r[rng.sample(range(g2), round(0.2 * g2))] = True
            keep_r[b, first : first + g2] = torch.from_numpy(r)
        orc = score(model, seqs, keep_o)
        res["oracle"] += orc
        if empty:
            keep_o1 = keep_o.clone()
            for b, p in empty:
                keep_o1[b, p] = True
            orc = score(model, seqs, keep_o1)
        res["oracle_min1"] += orc
        res["random20"] += score(model, seqs, keep_r)
    vres = []
    for vi in range(min(max_videos, len(data.videos))):
        v = data.videos[vi]
        fr = data.video_rgb[v["globalOffset"] : v["globalOffset"] + v["numFrames"]]
        feats = clip_features(model, fr)
        last = v["frames"][-1]
        vres += score(model, [clip_seq(tok, list(feats), last["qa"])])
    model.train()
    return {
        "stills_all": tally(res["all"]),
        "stills_oracle": tally(res["oracle"]),
        "stills_oracle_min1": tally(res["oracle_min1"]),
        "stills_random20": tally(res["random20"]),
        "oracle_kept_fraction": round(float(np.mean(kept_oracle)), 4) if kept_oracle else None,
        "videos": tally(vres),
        "counts": {"stills": n, "videos": min(max_videos, len(data.videos))},
    }


def main():
    args = build_parser().parse_args()

    grow = sorted(int(x) for x in args.lm_grow.split(",")) if args.lm_grow else []
    if args.lm_layers is not None:
        LmConfig.num_layers = args.lm_layers
    elif args.from_checkpoint:
        LmConfig.num_layers = lm_depth(torch.load(args.from_checkpoint))
    if grow and not args.resume_b1:
        raise SystemExit("--lm-grow: only with --resume-b1 (it adds layers to a trained phase-1 LM)")
    if grow and (len(set(grow)) != len(grow) or grow[0] < 0 or grow[-1] >= LmConfig.num_layers):
        raise SystemExit(f"--lm-grow: distinct layer indices below --lm-layers ({LmConfig.num_layers})")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    py_rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)
    tok = Tokenizer()
    with_identity = args.temporal_identity or bool(args.from_checkpoint and "identity.table" in torch.load(args.from_checkpoint))
    model = WinnowTiny(len(tok.vocab), temporal_identity=with_identity)
    log("params: vit", sum(p.numel() for p in model.vit.parameters()), "projector", sum(p.numel() for p in model.projector.parameters()), "lm", sum(p.numel() for p in model.lm.parameters()))
    t_start = time.time()
    train_info = {}
    if args.from_checkpoint:
        load_checkpoint(model, args.from_checkpoint)
        log("loaded", args.from_checkpoint)
    elif not args.skip_train:
        data = Shards(args.shards, args.max_stills, args.max_videos)
        log(f"train data: {len(data.stills)} stills, {len(data.videos)} videos, {len(data.video_rgb)} video frames")
        resume_b1 = None
        if args.resume_b1_state:
            resume_b1 = torch.load(args.resume_b1_state)
            if resume_b1.get("steps") != args.steps_b:
                raise SystemExit(f"--resume-b1-state: saved for a {resume_b1.get('steps')}-step schedule, --steps-b is {args.steps_b}")
            load_checkpoint(model, resume_b1["model"], ("proj_heads.", "identity."))
            log("resuming stage B phase 1 from", args.resume_b1_state, "at step", resume_b1["step"])
        elif args.resume_b1:
            # Phase-1 checkpoints may predate ProjectorHeads; those start from their seeded init.
            load_checkpoint(model, grow_lm(torch.load(args.resume_b1), grow, model) if grow else args.resume_b1, ("proj_heads.", "identity."))
            log("resumed stage B phase 1 from", args.resume_b1, f"(LM grown to {LmConfig.num_layers} layers: new, zero-output layers at {grow})" if grow else "")
        elif args.resume_a:
            # Stage A trains neither ProjectorHeads nor the projector; checkpoints saved before those
            # existed lack them (their seeded init is used, as in a run without --resume-a).
            load_checkpoint(model, args.resume_a, ("proj_heads.", "projector.cell"))
            log("resumed stage A from", args.resume_a)
        else:
            if args.resume_a1:
                load_checkpoint(model, args.resume_a1, ("proj_heads.", "projector.cell"))
                log("resumed stage A phase 1 from", args.resume_a1)
            else:
                stage_a(model, data, args.steps_a, args.batch_a, args.lr_a, np_rng)
                torch.save(model.state_dict(), os.path.join(args.work, "stage_a1.pt"))
            # Phase A2: the same losses plus the scene facts (global_labels) on the object tokens. From
            # the first step they competed with the per-patch labels they depend on (1000 steps with
            # them from the start: centre shape accuracy 0.50 vs 1.00 without), so they come once
            # shapes and colours are learned.
            if args.steps_a2 > 0:
                side_head = None
                if args.side_weight > 0:
                    gen = torch.Generator().manual_seed(args.seed + 7)
                    # nn.Linear's own init draws from the global generator: restore it, so the fact is the
                    # only difference from the shipped recipe.
                    rng_state = torch.get_rng_state()
                    side_head = torch.nn.Linear(model.vit.c.hidden_size, 2)
                    torch.set_rng_state(rng_state)
                    with torch.no_grad():
                        side_head.weight.uniform_(-0.1, 0.1, generator=gen)
                        side_head.bias.zero_()
                stage_a(model, data, args.steps_a2, args.batch_a, args.lr_a2, np_rng, glob_weight=args.glob_weight, warmup=20, tag="A2", side_head=side_head, side_weight=args.side_weight)
            torch.save(model.state_dict(), os.path.join(args.work, "stage_a.pt"))
            if args.stop_after_a:
                log("stage A done in", round(time.time() - t_start), "s")
                return
        t_a = time.time()
        for extra in args.extra_videos:
            n = data.add_videos(extra)
            log(f"stage B: {n} more videos from {extra} ({len(data.videos)} in all, {len(data.video_rgb)} frames)")
        common = dict(ckpt_dir=args.work, vit_lr_scale=args.vit_lr_scale, cache_features=args.cache_features, ckpt_every=args.ckpt_every_b)
        identity = model.identity
        if not args.resume_b1:
            # Phase 1: the LM learns to read the frames (the first steps_b1 steps of a steps_b schedule).
            # The temporal identity comes in phase 2 only, as in the shipped recipe (phase 2 resumed
            # from side025_stage_b1.pt, a phase 1 without it).
            model.identity = None
            phase_1 = StageB(steps=args.steps_b, still_batch=args.still_batch, clip_batch=args.clip_batch, clip_frac_max=args.clip_frac, lr=args.lr_b, max_frames=args.max_frames, stop_at=args.steps_b1, ckpt_name="stage_b1_last.pt", **common)
            stage_b(model, tok, data, phase_1, py_rng, resume=resume_b1)
            model.identity = identity
            torch.save(model.state_dict(), os.path.join(args.work, "stage_b1.pt"))
        if identity is not None and args.identity_init > 0 and args.steps_b2 > 0:
            gen = torch.Generator().manual_seed(args.seed + 11)
            with torch.no_grad():
                t = torch.randn(identity.table.shape, generator=gen)
                identity.table.copy_(t / t.norm(dim=1, keepdim=True) * args.identity_init)
            log(f"temporal identity: random directions of norm {args.identity_init}")
        # Phase 2: the same data and loss plus a penalty on how widely the question and answer tokens
        # spread their attention. After phase 1 they spread it over dozens of background tokens that
        # carry nothing (MODEL_CARD, "What limits it"), so answers depended on those tokens being
        # present; concentrating attention lets the answers rest on the tokens that hold the answer.
        # It uses no labels and no token dropping: pruning stays training-free.
        if args.steps_b2 > 0:
            for extra in args.extra_videos_b2:
                n = data.add_videos(extra)
                log(f"phase 2: {n} more videos from {extra} ({len(data.videos)} in all, {len(data.video_rgb)} frames)")
            aw = answer_rarity(data, args.rarity_families.split(","), args.rarity_b2, args.rarity_cap) if args.rarity_b2 > 0 else None
            aw = family_weight(args.family_weight_b2, aw)
            if args.apart_weight_b2 != 1.0:
                apart_counts(data)
                aw = apart_weight(args.apart_weight_b2, aw)
            phase_2 = StageB(
                steps=args.steps_b2,
                still_batch=args.still_batch,
                clip_batch=args.clip_batch,
                clip_frac_max=args.clip_frac_b2,
                lr=args.lr_b2,
                max_frames=args.max_frames,
                proj_aux_weight=args.proj_aux,
                clip_from_start=True,
                ckpt_name="stage_b2_last.pt",
                attn_entropy=args.attn_entropy,
                warmup=args.warmup_b2,
                answer_weight=aw,
                clip_last_frac=args.clip_last_b2,
                entropy_scale=args.entropy_family_scale,
                average_from=round(args.steps_b2 * (1 - args.average_b2)) if args.average_b2 > 0 else None,
                identity_lr_scale=args.identity_lr_scale,
                **common,
            )
            stage_b(model, tok, data, phase_2, random.Random(args.seed + 2))
        torch.save(model.state_dict(), os.path.join(args.work, "stage_b.pt"))
        train_info = {"stage_a_s": round(t_a - t_start), "stage_b_s": round(time.time() - t_a)}
        del data
    eval_data = Shards(args.eval_shards)
    metrics = evaluate(model, tok, eval_data, args.eval_stills, args.eval_videos)
    log("eval", json.dumps(metrics))
    from export import export_all  # noqa: E402

    export_all(model, tok, args.out, metrics=metrics, train_args=vars(args), train_info=train_info, eval_meta=eval_data.meta)
    log("done in", round(time.time() - t_start), "s")


if __name__ == "__main__":
    main()
