"""Reads the training shards written by `winnow synth --shards` into memory."""
import glob
import json
import os
import numpy as np


class Shards:
    def __init__(self, root, max_stills=None, max_videos=None):
        self.meta = json.load(open(os.path.join(root, "meta.json")))
        s = self.meta["inputSize"]
        g = self.meta["grid"]
        self.side, self.grid = s, g
        fb, lb = s * s * 3, g * g * 3
        rgb, lab, self.stills = [], [], []
        for base in sorted(glob.glob(os.path.join(root, "stills_*.jsonl"))):
            b = base[: -len(".jsonl")]
            lines = [json.loads(l) for l in open(base) if l.strip()]
            r = np.fromfile(b + ".rgb", dtype=np.uint8).reshape(-1, s, s, 3)
            l = np.fromfile(b + ".labels", dtype=np.uint8).reshape(-1, g * g, 3)
            assert len(r) == len(lines) == len(l), base
            rgb.append(r)
            lab.append(l)
            self.stills.extend(lines)
            if max_stills and len(self.stills) >= max_stills:
                break
        self.still_rgb = np.concatenate(rgb) if rgb else np.zeros((0, s, s, 3), np.uint8)
        self.still_lab = np.concatenate(lab) if lab else np.zeros((0, g * g, 3), np.uint8)
        self.videos = []
        self.video_rgb = np.zeros((0, s, s, 3), np.uint8)
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
        rgb, lab, added = [self.video_rgb], [self.video_lab], 0
        off = len(self.video_rgb)
        for base in sorted(glob.glob(os.path.join(root, "videos_*.jsonl"))):
            b = base[: -len(".jsonl")]
            lines = [json.loads(l) for l in open(base) if l.strip()]
            r = np.fromfile(b + ".rgb", dtype=np.uint8).reshape(-1, s, s, 3)
            l = np.fromfile(b + ".labels", dtype=np.uint8).reshape(-1, g * g, 3)
            for v in lines:
                v["globalOffset"] = off + v["frameOffset"]
                assert len(v["frames"]) == v["numFrames"]
            off += len(r)
            rgb.append(r)
            lab.append(l)
            self.videos.extend(lines)
            added += len(lines)
            if max_videos and len(self.videos) >= max_videos:
                break
        self.video_rgb = np.concatenate(rgb)
        self.video_lab = np.concatenate(lab)
        return added


def to_pixels(rgb_u8):
    """uint8 [B,H,W,3] -> normalized float32 [B,3,H,W] exactly as preprocessor_config.json says."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb_u8)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.5
