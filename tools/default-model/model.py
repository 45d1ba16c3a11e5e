"""winnow-tiny: a small LLaVA-style vision-language model for the synthetic world.

ViT (patch 8, 14x14 grid + [CLS]) -> features of the second-to-last layer (patch tokens only)
-> 2-layer MLP projector -> Llama-style decoder LM (RMSNorm, RoPE, GQA, SwiGLU).
Visual-token positions use the "frame-shared" scheme: every visual token of a frame has the same
position id, so pruning a frame never changes any position; where a token sits in the frame is
carried by a learned cell embedding the projector adds to its features.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 19  # 0 background, 1 + shape*6 + colour


class _Bmm(torch.autograd.Function):
    """Batched matmul on contiguous operands, forward and backward. Debian's CPU torch 1.13 runs bmm
    with a transposed (non-contiguous) operand about 12x slower than on contiguous ones."""

    @staticmethod
    def forward(ctx, a, b):
        a = a.contiguous()
        b = b.contiguous()
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = g.contiguous()
        return torch.bmm(g, b.transpose(1, 2).contiguous()), torch.bmm(a.transpose(1, 2).contiguous(), g)


def bmm4(a, b):
    """a [..., n, k] @ b [..., k, m] for 4-D tensors; plain matmul when exporting (tracing)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return a @ b
    lead = a.shape[:-2]
    out = _Bmm.apply(a.reshape(-1, a.shape[-2], a.shape[-1]), b.reshape(-1, b.shape[-2], b.shape[-1]))
    return out.view(*lead, out.shape[-2], out.shape[-1])


class VitConfig:
    image_size = 112
    patch_size = 8
    hidden_size = 96
    num_layers = 4
    num_heads = 3
    mlp_size = 384
    feature_layer = -2


class LmConfig:
    hidden_size = 128
    num_layers = 4
    num_heads = 4
    num_kv_heads = 2
    head_dim = 32
    mlp_size = 384
    rope_theta = 10000.0
    rms_eps = 1e-5
    vocab_size = 0  # set from the tokenizer


class VitBlock(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)
        self.heads = heads

    def forward(self, x):
        B, N, D = x.shape
        h = self.ln1(x)
        qkv = self.qkv(h).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = bmm4(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(D // self.heads))
        att = att.softmax(-1)
        o = bmm4(att, v).transpose(1, 2).reshape(B, N, D)
        x = x + self.proj(o)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return x


class Vit(nn.Module):
    def __init__(self, c=VitConfig):
        super().__init__()
        self.c = c
        g = c.image_size // c.patch_size
        self.grid = g
        # Convolutional patch embedding (hybrid ViT, "early convolutions help transformers see"): four
        # 3x3 convolutions (stride 1, 2, 2, 2) with BatchNorm -> one token per 8x8 patch, receptive
        # field 17 px. Objects are 10-17 px at this input size and straddle patch borders; a token must
        # see a whole outline to tell a circle from a square. A linear patch embedding, or the same stem
        # without normalization, learned shapes far too slowly for this machine's budget (object-centre
        # shape accuracy after 150 steps: 42 % without BatchNorm, 69 % with it).
        assert c.patch_size == 8
        self.patch = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 48, 3, 2, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(),
            nn.Conv2d(48, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, c.hidden_size, 3, 2, 1),
        )
        # After stage A the BatchNorm statistics are frozen: stage B feeds whole clips of one video
        # (one background) whose batch statistics would skew them.
        self.freeze_bn = False
        self.cls = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.pos = nn.Parameter(torch.randn(1, g * g + 1, c.hidden_size) * 0.02)
        self.blocks = nn.ModuleList([VitBlock(c.hidden_size, c.num_heads, c.mlp_size) for _ in range(c.num_layers)])
        self.ln_post = nn.LayerNorm(c.hidden_size)

    def train(self, mode=True):
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, pixel_values):
        """pixel_values: normalized [B,3,H,W]. Returns (feature-layer tokens incl. CLS [B,1+N,D], final CLS [B,D])."""
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        hidden = [x]
        for b in self.blocks:
            x = b(x)
            hidden.append(x)
        feat = hidden[self.c.feature_layer]
        return feat, self.ln_post(x[:, 0])


class DenseHeads(nn.Module):
    """Cheap dense supervision for the vision tower (training only, not exported)."""

    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.cls_head = nn.Linear(d, NUM_CLASSES)
        self.centre_head = nn.Linear(d, 1)
        self.cov_head = nn.Linear(d, 1)
        self.xy_head = nn.Linear(d, 2)
        self.shape_head = nn.Linear(d, 4)  # background, circle, square, triangle
        self.set_head = nn.Linear(d, NUM_CLASSES - 1)
        # Scene-level facts read back from every object token (train.global_labels): how many objects
        # of its shape the image holds, how many objects in all, and its place from the left.
        self.count_head = nn.Linear(d, 4)
        self.total_head = nn.Linear(d, 4)
        self.rank_head = nn.Linear(d, 3)


class ProjectorHeads(nn.Module):
    """Linear probes on the projected (LM-width) visual tokens, training only (not exported): each
    token's object class and patch coordinates. Without them the projector, trained from scratch by
    the LM's loss alone, dropped the location the vision tower encodes (linear R² for x on object
    tokens: 0.94 in the tower, 0.51 after the projector) and left/right stayed at chance."""

    def __init__(self, d):
        super().__init__()
        self.cls_head = nn.Linear(d, NUM_CLASSES)
        self.xy_head = nn.Linear(d, 2)


def sincos_2d(g, d):
    """[g*g, d]: sine/cosine of each patch's row (first half) and column (second half), wavelengths
    from 2*pi to 200*pi patches."""
    r, c = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    q = d // 4
    omega = 1.0 / (100 ** (torch.arange(q, dtype=torch.float32) / q))
    parts = []
    for v in (r.reshape(-1).float(), c.reshape(-1).float()):
        a = v[:, None] * omega[None]
        parts += [a.sin(), a.cos()]
    return torch.cat(parts, 1)


class Projector(nn.Module):
    """LayerNorm + 2-layer MLP, then a learned embedding of the patch's grid cell (initialised to a
    2-D sine/cosine pattern) added to every token. The cell embedding makes each visual token say
    where it is in the features themselves, so location survives pruning (a kept token carries its
    own) and needs no position ids: the LM's rotary positions stay frame-shared. Without it the
    projector dropped most of the location the tower encodes and left/right stayed at chance; with
    it, a 500-step stills-only pilot reached F4 90 % (vs 48 %) and F 92.7 % (vs 81.6 %)."""

    def __init__(self, dv, dl, grid=14):
        super().__init__()
        self.norm = nn.LayerNorm(dv)
        self.fc1 = nn.Linear(dv, dl)
        self.fc2 = nn.Linear(dl, dl)
        self.cell = nn.Parameter(sincos_2d(grid, dl) * 0.5)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x)))) + self.cell


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, pos, theta):
    """x [B,H,S,Dh], pos [B,S] (int64). Rotate-half convention (Llama)."""
    dh = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))
    ang = pos.to(torch.float32).unsqueeze(-1) * inv  # [B,S,dh/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1).unsqueeze(1)
    sin = torch.cat([ang.sin(), ang.sin()], -1).unsqueeze(1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    rot = torch.cat([-x2, x1], -1)
    return x * cos + rot * sin


class LmLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.hidden_size
        self.in_norm = RMSNorm(d, c.rms_eps)
        self.q = nn.Linear(d, c.num_heads * c.head_dim, bias=False)
        self.k = nn.Linear(d, c.num_kv_heads * c.head_dim, bias=False)
        self.v = nn.Linear(d, c.num_kv_heads * c.head_dim, bias=False)
        self.o = nn.Linear(c.num_heads * c.head_dim, d, bias=False)
        self.post_norm = RMSNorm(d, c.rms_eps)
        self.gate = nn.Linear(d, c.mlp_size, bias=False)
        self.up = nn.Linear(d, c.mlp_size, bias=False)
        self.down = nn.Linear(c.mlp_size, d, bias=False)
        self.entropy_rows = None  # bool [B,S] or None
        self.entropy = None

    def forward(self, x, pos, mask_add, past_k=None, past_v=None):
        """mask_add: additive mask [B,1,S,T] (0 or -inf-ish), T = past + S."""
        c = self.c
        B, S, _ = x.shape
        h = self.in_norm(x)
        q = self.q(h).view(B, S, c.num_heads, c.head_dim).transpose(1, 2)
        k = self.k(h).view(B, S, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v(h).view(B, S, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q = rope(q, pos, c.rope_theta)
        k = rope(k, pos, c.rope_theta)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        rep = c.num_heads // c.num_kv_heads
        T = k.shape[2]
        kk = k.unsqueeze(2).expand(B, c.num_kv_heads, rep, T, c.head_dim).reshape(B, c.num_heads, T, c.head_dim)
        vv = v.unsqueeze(2).expand(B, c.num_kv_heads, rep, T, c.head_dim).reshape(B, c.num_heads, T, c.head_dim)
        logit = bmm4(q, kk.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim)) + mask_add
        att = logit.softmax(-1)
        if self.entropy_rows is not None:
            # Mean attention entropy (nats) of the marked query rows over heads: a training-only
            # regulariser (see train.py, --attn-entropy); never set when exporting.
            ent = -(att * logit.log_softmax(-1).clamp(min=-30.0)).sum(-1)  # [B,H,S]
            # Rows may carry weights (a question family's scale); the mean stays over the marked
            # rows, so with every weight 1 it is the plain mean.
            w = self.entropy_rows.unsqueeze(1).to(ent.dtype)
            self.entropy = (ent * w).sum() / ((w > 0).sum() * c.num_heads).clamp(min=1.0)
        o = bmm4(att, vv).transpose(1, 2).reshape(B, S, c.num_heads * c.head_dim)
        x = x + self.o(o)
        h = self.post_norm(x)
        x = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return x, present


class Lm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([LmLayer(c) for _ in range(c.num_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_eps)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def forward(self, embeds, pos, mask_add, past=None):
        x = embeds
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = (past[i] if past is not None else (None, None))
            x, pr = layer(x, pos, mask_add, pk, pv)
            presents.append(pr)
        return self.head(self.norm(x)), presents


# Temporal identity (video only): the runtime's tracker gives every object token the ordinal of its
# object among the objects of its shape seen so far in the video (1 = the first circle to appear, ...).
MAX_ORDINAL = 9
MIN_PATCHES = 2
GAP_FRAMES = 2


def track_ordinals(classes, min_patches=MIN_PATCHES, gap_frames=GAP_FRAMES, max_ordinal=MAX_ORDINAL):
    """The per-token appearance ordinals of one video's sampled frames, from its first frame.

    classes: int [T, N], the vision tower's per-patch class (argmax of its class head; 0 background,
    1 + shape*6 + colour). A class counts as present in a frame when at least min_patches tokens carry
    it (a lone token is usually a misread edge). A present class that was absent for the previous
    gap_frames frames (or never seen) is a new object: its shape's count goes up by one and that count,
    capped at max_ordinal, is its ordinal for as long as it stays (gaps shorter than gap_frames are
    one object that the tower missed for a frame). Two objects present at once never share shape and
    colour (docs/default-model.md, "The synthetic world"), so a class names one object at a time.
    Returns int64 [T, N]: each token's ordinal, 0 for background and for classes below min_patches.
    src/encode/tracker.ts implements the same rule for the runtime."""
    import numpy as np

    classes = np.asarray(classes, dtype=np.int64)
    T, N = classes.shape
    out = np.zeros((T, N), np.int64)
    shape_count = np.zeros(4, np.int64)
    absent = np.full(NUM_CLASSES, gap_frames, np.int64)
    ordinal = np.zeros(NUM_CLASSES, np.int64)
    for t in range(T):
        cnt = np.bincount(classes[t], minlength=NUM_CLASSES)
        for c in range(1, NUM_CLASSES):
            if cnt[c] >= min_patches:
                if absent[c] >= gap_frames:
                    s = (c - 1) // 6 + 1
                    shape_count[s] += 1
                    ordinal[c] = min(shape_count[s], max_ordinal)
                absent[c] = 0
            else:
                absent[c] += 1
        present = cnt >= min_patches
        present[0] = False
        out[t] = np.where(present[classes[t]], ordinal[classes[t]], 0)
    return out


class TemporalIdentity(nn.Module):
    """A learned vector per appearance ordinal, added to an object token's projected features in
    video frames (before pooling). Per-frame features cannot say whether the red circle now is the
    one seen ten seconds ago or a second one; the ordinal can. Zero at the start, so a phase 2 that
    adds it begins from the phase-1 model's function."""

    def __init__(self, d):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(MAX_ORDINAL, d))

    def forward(self, ordinals):
        """ordinals: int64 [..., N] in 0..MAX_ORDINAL -> [..., N, d] (zeros where 0)."""
        padded = torch.cat([torch.zeros_like(self.table[:1]), self.table], 0)
        return padded[ordinals]


class WinnowTiny(nn.Module):
    def __init__(self, vocab_size, temporal_identity=False):
        super().__init__()
        LmConfig.vocab_size = vocab_size
        self.vit = Vit()
        self.heads = DenseHeads(VitConfig.hidden_size)
        self.projector = Projector(VitConfig.hidden_size, LmConfig.hidden_size, VitConfig.image_size // VitConfig.patch_size)
        self.proj_heads = ProjectorHeads(LmConfig.hidden_size)
        self.lm = Lm(LmConfig)
        # Built last and from zeros: the seeded init of everything above stays as it was.
        self.identity = TemporalIdentity(LmConfig.hidden_size) if temporal_identity else None

    def patch_classes(self, patches):
        """[B, N] int64: the tower's class of each feature-layer patch token (the stage-A class head)."""
        return self.heads.cls_head(self.heads.ln(patches)).argmax(-1)

    def image_features(self, pixel_values):
        feat, _ = self.vit(pixel_values)
        patches = feat[:, 1:]
        return self.projector(patches), feat

    def cls_similarity(self, feat):
        cls = F.normalize(feat[:, :1], dim=-1)
        pt = F.normalize(feat[:, 1:], dim=-1)
        return (pt * cls).sum(-1)


def pool2x2(tokens, grid):
    """Average 2x2 pooling of a [B, grid*grid, D] token grid (grid even)."""
    B, N, D = tokens.shape
    t = tokens.view(B, grid // 2, 2, grid // 2, 2, D)
    return t.mean(dim=(2, 4)).reshape(B, (grid // 2) ** 2, D)
