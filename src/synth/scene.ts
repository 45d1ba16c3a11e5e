import { Rng } from './rng.js';
import {
  BACKGROUNDS,
  CANVAS_HEIGHT,
  CANVAS_WIDTH,
  COLORS,
  MAX_OBJECTS,
  MAX_SPEED_PX_PER_S,
  MIN_GAP_PX,
  SHAPES,
  SIZE_PX,
  SIZES,
  type Background,
  type Color,
  type Shape,
  type Size,
} from './world.js';

export interface ObjectSpec {
  id: number;
  shape: Shape;
  color: Color;
  size: Size;
}

/** An object at one moment: centre of its bounding box, in canvas pixels. */
export interface PlacedObject extends ObjectSpec {
  x: number;
  y: number;
}

/** A straight-line piece of a track: position at tMs and constant velocity until the next segment. */
export interface TrackSegment {
  tMs: number;
  x: number;
  y: number;
  vxPxPerS: number;
  vyPxPerS: number;
}

export interface TrackedObject extends ObjectSpec {
  appearMs: number;
  /** Exclusive: the object is present for appearMs <= t < leaveMs. */
  leaveMs: number;
  segments: TrackSegment[];
}

export interface BackgroundSpec {
  name: Background;
  /** Direction of the gradient in radians: −20 at the edge behind it, +20 at the edge it points to. */
  gradientAngleRad: number;
  /** Seed of the fixed per-pixel noise. */
  noiseSeed: number;
}

export interface StillScene {
  kind: 'still';
  width: number;
  height: number;
  background: BackgroundSpec;
  objects: PlacedObject[];
}

export interface VideoScene {
  kind: 'video';
  width: number;
  height: number;
  fps: number;
  durationMs: number;
  background: BackgroundSpec;
  objects: TrackedObject[];
}

export function sampleBackground(rng: Rng): BackgroundSpec {
  return { name: rng.pick(BACKGROUNDS), gradientAngleRad: rng.uniform(0, 2 * Math.PI), noiseSeed: rng.nextUint32() };
}

export function halfExtent(size: Size): number {
  return SIZE_PX[size] / 2;
}

/** Gap between two axis-aligned bounding boxes (negative when they overlap). */
export function bboxGap(ax: number, ay: number, ah: number, bx: number, by: number, bh: number): number {
  const gx = Math.abs(ax - bx) - ah - bh;
  const gy = Math.abs(ay - by) - ah - bh;
  return Math.max(gx, gy);
}

function fitsCanvas(x: number, y: number, h: number): boolean {
  return x - h >= 0 && x + h <= CANVAS_WIDTH && y - h >= 0 && y + h <= CANVAS_HEIGHT;
}

/** Picks a position for an object of half-extent h that keeps MIN_GAP_PX (+margin) from the others, or null. */
export function placeObject(rng: Rng, h: number, others: readonly { x: number; y: number; h: number }[], marginPx = 0): { x: number; y: number } | null {
  for (let attempt = 0; attempt < 200; attempt++) {
    const x = rng.int(Math.ceil(h), Math.floor(CANVAS_WIDTH - h));
    const y = rng.int(Math.ceil(h), Math.floor(CANVAS_HEIGHT - h));
    if (!fitsCanvas(x, y, h)) continue;
    if (others.every((o) => bboxGap(x, y, h, o.x, o.y, o.h) >= MIN_GAP_PX + marginPx)) return { x, y };
  }
  return null;
}

/** A new object whose shape+colour differs from every object in `present`. */
export function sampleObjectSpec(rng: Rng, id: number, present: readonly ObjectSpec[]): ObjectSpec {
  const free: { shape: Shape; color: Color }[] = [];
  for (const shape of SHAPES) for (const color of COLORS) if (!present.some((o) => o.shape === shape && o.color === color)) free.push({ shape, color });
  const pick = rng.pick(free);
  return { id, shape: pick.shape, color: pick.color, size: rng.pick(SIZES) };
}

export interface StillOptions {
  /** Relative weights of 0, 1, 2, 3 objects. */
  countWeights?: readonly number[];
}

export function sampleStill(rng: Rng, options: StillOptions = {}): StillScene {
  const weights = options.countWeights ?? [1, 2, 2, 2];
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.next() * total;
  let count = 0;
  while (count < weights.length - 1 && r >= weights[count]) r -= weights[count++];
  count = Math.min(count, MAX_OBJECTS);
  const background = sampleBackground(rng);
  const objects: PlacedObject[] = [];
  for (let i = 0; i < count; i++) {
    const spec = sampleObjectSpec(rng, i, objects);
    const pos = placeObject(rng, halfExtent(spec.size), objects.map((o) => ({ x: o.x, y: o.y, h: halfExtent(o.size) })));
    if (pos) objects.push({ ...spec, ...pos });
  }
  return { kind: 'still', width: CANVAS_WIDTH, height: CANVAS_HEIGHT, background, objects };
}

export interface VideoOptions {
  durationMs: number;
  /** Mean time between enter/leave events. */
  meanEventIntervalMs?: number;
  /** Every object stays at least this long (and appears at least this long before the end). */
  minPresenceMs?: number;
  maxSpeedPxPerS?: number;
  fps?: number;
}

/** The simulation's time step: every event and track segment of a video lies on this grid. */
export const STEP_MS = 20;

/** Where a present object is at tMs, extrapolating its last segment (valid from that segment on). */
export function lastSegmentPosition(o: TrackedObject, tMs: number): { x: number; y: number } {
  const s = o.segments[o.segments.length - 1];
  const dt = (tMs - s.tMs) / 1000;
  return { x: s.x + s.vxPxPerS * dt, y: s.y + s.vyPxPerS * dt };
}

/**
 * Puts a new object into the scene at tMs: a free position (2 px more than the minimum gap from
 * every present object, so the first motion step has room), a random speed up to maxSpeedPxPerS and
 * direction. Null when there is no room. `leaveMs` can be changed later by the caller.
 */
export function launchObject(rng: Rng, spec: ObjectSpec, tMs: number, present: readonly TrackedObject[], leaveMs: number, maxSpeedPxPerS: number): TrackedObject | null {
  const h = halfExtent(spec.size);
  const others = present.map((o) => ({ ...lastSegmentPosition(o, tMs), h: halfExtent(o.size) }));
  const pos = placeObject(rng, h, others, 2);
  if (!pos) return null;
  const speed = rng.uniform(0, maxSpeedPxPerS);
  const angle = rng.uniform(0, 2 * Math.PI);
  return { ...spec, appearMs: tMs, leaveMs, segments: [{ tMs, x: pos.x, y: pos.y, vxPxPerS: speed * Math.cos(angle), vyPxPerS: speed * Math.sin(angle) }] };
}

/**
 * Simulates a static-camera video: objects enter and leave at event times, move in straight lines,
 * bounce off the canvas edges and off each other (both reverse when they would come closer than the
 * minimum gap; an object that cannot move validly stops), so boxes never overlap.
 */
export function sampleVideo(rng: Rng, options: VideoOptions): VideoScene {
  const durationMs = options.durationMs;
  const meanEventMs = options.meanEventIntervalMs ?? 6000;
  const minPresenceMs = options.minPresenceMs ?? 3000;
  const maxSpeed = options.maxSpeedPxPerS ?? MAX_SPEED_PX_PER_S;
  const background = sampleBackground(rng);
  const all: TrackedObject[] = [];
  const present: TrackedObject[] = [];
  let nextId = 0;

  const addObject = (tMs: number): boolean => {
    const o = launchObject(rng, sampleObjectSpec(rng, nextId, present), tMs, present, durationMs, maxSpeed);
    if (!o) return false;
    nextId++;
    all.push(o);
    present.push(o);
    return true;
  };

  const initial = rng.int(0, MAX_OBJECTS);
  for (let i = 0; i < initial; i++) addObject(0);

  const nextEventGap = (): number => Math.max(STEP_MS, Math.round(-Math.log(1 - rng.next()) * meanEventMs / STEP_MS) * STEP_MS);
  let nextEventMs = nextEventGap();
  for (let t = 0; t < durationMs; t += STEP_MS) {
    if (t >= nextEventMs) {
      nextEventMs = t + nextEventGap();
      const leavable = present.filter((o) => t - o.appearMs >= minPresenceMs);
      const canEnter = present.length < MAX_OBJECTS && t <= durationMs - minPresenceMs;
      const enter = canEnter && (leavable.length === 0 || present.length === 0 || rng.next() < 0.5);
      if (enter) addObject(t);
      else if (leavable.length > 0) {
        const o = rng.pick(leavable);
        o.leaveMs = t;
        present.splice(present.indexOf(o), 1);
      }
    }
    stepMotion(present, t);
  }
  return { kind: 'video', width: CANVAS_WIDTH, height: CANVAS_HEIGHT, fps: options.fps ?? 10, durationMs, background, objects: all };
}

/**
 * Advances the present objects' tracks from tMs to tMs + STEP_MS: bounces off the canvas edges and
 * off each other, so that positions valid at tMs stay valid (inside the canvas, the minimum gap apart).
 */
export function stepMotion(present: TrackedObject[], tMs: number): void {
  const posAt = lastSegmentPosition;
  const t1 = tMs + STEP_MS;
  const newSegment = (o: TrackedObject, vx: number, vy: number): void => {
    const p = posAt(o, tMs);
    const last = o.segments[o.segments.length - 1];
    if (last.tMs === tMs) {
      last.vxPxPerS = vx;
      last.vyPxPerS = vy;
    } else o.segments.push({ tMs, x: p.x, y: p.y, vxPxPerS: vx, vyPxPerS: vy });
  };
  for (const o of present) {
    const h = halfExtent(o.size);
    const p = posAt(o, t1);
    const s = o.segments[o.segments.length - 1];
    let vx = s.vxPxPerS;
    let vy = s.vyPxPerS;
    if (p.x - h < 0 || p.x + h > CANVAS_WIDTH) vx = -vx;
    if (p.y - h < 0 || p.y + h > CANVAS_HEIGHT) vy = -vy;
    if (vx !== s.vxPxPerS || vy !== s.vyPxPerS) newSegment(o, vx, vy);
    const q = posAt(o, t1);
    if (!fitsCanvas(q.x, q.y, h)) newSegment(o, 0, 0);
  }
  // First conflict of a pair: both reverse (a bounce). Any pair still conflicting after that
  // stops where it is, since positions at tMs were valid; repeated until no pair conflicts.
  for (let pass = 0; pass < 2 * present.length + 2; pass++) {
    let clean = true;
    for (const o of present) {
      const q = posAt(o, t1);
      if (!fitsCanvas(q.x, q.y, halfExtent(o.size))) {
        newSegment(o, 0, 0);
        clean = false;
      }
    }
    for (let i = 0; i < present.length; i++) {
      for (let j = i + 1; j < present.length; j++) {
        const a = present[i];
        const b = present[j];
        const pa = posAt(a, t1);
        const pb = posAt(b, t1);
        if (bboxGap(pa.x, pa.y, halfExtent(a.size), pb.x, pb.y, halfExtent(b.size)) >= MIN_GAP_PX) continue;
        clean = false;
        const sa = a.segments[a.segments.length - 1];
        const sb = b.segments[b.segments.length - 1];
        if (pass === 0) {
          newSegment(a, -sa.vxPxPerS, -sa.vyPxPerS);
          newSegment(b, -sb.vxPxPerS, -sb.vyPxPerS);
        } else {
          newSegment(a, 0, 0);
          newSegment(b, 0, 0);
        }
      }
    }
    if (clean) return;
  }
}

/** The objects present at time tMs with their positions. */
export function objectsAt(scene: VideoScene, tMs: number): PlacedObject[] {
  const out: PlacedObject[] = [];
  for (const o of scene.objects) {
    if (tMs < o.appearMs || tMs >= o.leaveMs) continue;
    let seg = o.segments[0];
    for (const s of o.segments) if (s.tMs <= tMs) seg = s;
    const dt = (tMs - seg.tMs) / 1000;
    out.push({ id: o.id, shape: o.shape, color: o.color, size: o.size, x: seg.x + seg.vxPxPerS * dt, y: seg.y + seg.vyPxPerS * dt });
  }
  return out;
}
