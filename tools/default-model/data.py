"""Reads the training shards written by `winnow synth --shards`: QA and labels into memory, frames
mapped from their files (page cache, shared between runs and dropped under pressure, where an
in-memory copy of the 3.5 GB of frames doubled a trainer's resident size)."""
import glob
import json
import os
import numpy as np


class Frames:
    """uint8 frames [N,H,W,3] over a list of memory-mapped chunks, indexed like one array by a slice
    or an integer index array (both return an in-memory copy)."""

    def __init__(self, frame_shape):
        self.frame_shape = tuple(frame_shape)
        self.parts = []
        self.starts = np.zeros(1, np.int64)

    def append(self, part):
        self.parts.append(part)
        self.starts = np.append(self.starts, self.starts[-1] + len(part))

    def __len__(self):
        return int(self.starts[-1])

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, slice):
            lo, hi, step = key.indices(n)
            if step == 1:
                p = int(np.searchsorted(self.starts, lo, side="right")) - 1
                if 0 <= p < len(self.parts) and hi <= self.starts[p + 1]:
                    return np.array(self.parts[p][lo - self.starts[p] : hi - self.starts[p]])
            idx = np.arange(lo, hi, step)
        else:
            idx = np.asarray(key, dtype=np.int64)
            if idx.ndim != 1:
                raise TypeError("Frames: index with a slice or a 1-d integer array")
            if len(idx) and (idx.min() < -n or idx.max() >= n):
                raise IndexError(f"Frames: index out of range for {n} frames")
            idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((len(idx),) + self.frame_shape, np.uint8)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        for p in np.unique(which):
            m = which == p
            out[m] = self.parts[p][idx[m] - self.starts[p]]
        return out


class Shards:
    def __init__(self, root, max_stills=None, max_videos=None):
        self.meta = json.load(open(os.path.join(root, "meta.json")))
        s = self.meta["inputSize"]
        g = self.meta["grid"]
        self.side, self.grid = s, g
        self.still_rgb = Frames((s, s, 3))
        lab, self.stills = [], []
        for base in sorted(glob.glob(os.path.join(root, "stills_*.jsonl"))):
            b = base[: -len(".jsonl")]
            lines = [json.loads(l) for l in open(base) if l.strip()]
            r = np.memmap(b + ".rgb", dtype=np.uint8, mode="r").reshape(-1, s, s, 3)
            l = np.fromfile(b + ".labels", dtype=np.uint8).reshape(-1, g * g, 3)
            assert len(r) == len(lines) == len(l), base
            self.still_rgb.append(r)
            lab.append(l)
            self.stills.extend(lines)
            if max_stills and len(self.stills) >= max_stills:
                break
        self.still_lab = np.concatenate(lab) if lab else np.zeros((0, g * g, 3), np.uint8)
        self.videos = []
        self.video_rgb = Frames((s, s, 3))
        self.video_lab = np.zeros((0, g * g, 3), np.uint8)
        self.add_videos(root, max_videos)

    def add_videos(self, root, max_videos=None):
        """Appends the video shards of `root` (its meta.json must match this set's frame geometry and
        input filter). Returns how many videos it added."""
        meta = json.load(open(os.path.join(root, "meta.json")))
        for k in ("inputSize", "patchSize", "grid", "inputFilter", "sampleFps", "world"):
            if meta.get(k) != self.meta.get(k):
                raise ValueError(f"{root}: meta {k} = {meta.get(k)!r}, expected {self.meta.get(k)!r}")
        s, g = self.side, self.grid
        lab, added = [self.video_lab], 0
        off = len(self.video_rgb)
        for base in sorted(glob.glob(os.path.join(root, "videos_*.jsonl"))):
            b = base[: -len(".jsonl")]
            lines = [json.loads(l) for l in open(base) if l.strip()]
            r = np.memmap(b + ".rgb", dtype=np.uint8, mode="r").reshape(-1, s, s, 3)
            l = np.fromfile(b + ".labels", dtype=np.uint8).reshape(-1, g * g, 3)
            assert len(r) == len(l), base
            for v in lines:
                v["globalOffset"] = off + v["frameOffset"]
                assert len(v["frames"]) == v["numFrames"]
            off += len(r)
            self.video_rgb.append(r)
            lab.append(l)
            self.videos.extend(lines)
            added += len(lines)
            if max_videos and len(self.videos) >= max_videos:
                break
        self.video_lab = np.concatenate(lab)
        return added


def to_pixels(rgb_u8):
    """uint8 [B,H,W,3] -> normalized float32 [B,3,H,W] exactly as preprocessor_config.json says."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb_u8)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.5
