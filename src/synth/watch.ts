// The watch profile: a static camera watched for minutes to hours that sees nothing most of the
// time. Rare appearances are planned per shape, then scheduled in time order under the frame rules;
// what the scheduler could not fit is dropped, never moved elsewhere. Motion is the busy profile's.
import { WinnowError } from '../errors.js';
import { Rng } from './rng.js';
import { STEP_MS, launchObject, sampleBackground, stepMotion, type TrackedObject, type VideoScene } from './scene.js';
import { CANVAS_HEIGHT, CANVAS_WIDTH, COLORS, MAX_OBJECTS, MAX_SPEED_PX_PER_S, SHAPES, SIZES, type Color, type Shape, type Size } from './world.js';

export const WATCH_MIN_DURATION_MS = 10 * 60_000;
export const WATCH_MAX_DURATION_MS = 8 * 3_600_000;
/** Rendered rate: twice what the pipeline samples, so every sampled second is a frame. */
export const WATCH_FPS = 2;
/** Per shape, so every count fits the answer words `zero` … `nine`. */
export const WATCH_MAX_APPEARANCES_PER_SHAPE = 9;
/** The earliest appearance starts within this fraction of the video: its start always matters. */
export const WATCH_FIRST_EVENT_FRACTION = 0.05;
/** An object of a shape and colour may not appear until this long after the last one like it left. */
export const WATCH_SAME_KIND_GAP_MS = 5000;
export const WATCH_MIN_STAY_MS = 8000;
export const WATCH_MAX_STAY_MS = 60_000;
/** Planned starts end this long before the end, so a planned stay fits with room to wait. */
export const WATCH_PLAN_END_MARGIN_MS = 70_000;
/** An appearance that still cannot start this long before the end is dropped. */
export const WATCH_LAST_START_MARGIN_MS = 10_000;

/** One planned appearance and what became of it. */
export interface WatchAppearance {
  shape: Shape;
  color: Color;
  size: Size;
  plannedStartMs: number;
  stayMs: number;
  /** The object in the scene that carried it out (appearing at or after the planned start), or null when dropped. */
  objectId: number | null;
}

export interface WatchScene {
  scene: VideoScene;
  /** In the order the scheduler considered them: planned start, then shape. */
  plan: WatchAppearance[];
}

export function checkWatchDuration(durationMs: number): void {
  if (!(Number.isInteger(durationMs) && durationMs >= WATCH_MIN_DURATION_MS && durationMs <= WATCH_MAX_DURATION_MS)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `a watch video lasts a whole number of ms from 10 min to 8 h, not ${durationMs} ms`, {
      details: { durationMs, minMs: WATCH_MIN_DURATION_MS, maxMs: WATCH_MAX_DURATION_MS },
    });
  }
}

const onGrid = (ms: number): number => Math.floor(ms / STEP_MS) * STEP_MS;

/** Every shape's appearances, drawn independently (one child generator per shape). */
function planAppearances(rng: Rng, durationMs: number): WatchAppearance[] {
  const latestStartMs = durationMs - WATCH_PLAN_END_MARGIN_MS;
  const plan: WatchAppearance[] = [];
  for (const [k, shape] of SHAPES.entries()) {
    const r = rng.fork(k);
    const n = r.int(0, WATCH_MAX_APPEARANCES_PER_SHAPE);
    for (let i = 0; i < n; i++) {
      plan.push({
        shape,
        color: r.pick(COLORS),
        size: r.pick(SIZES),
        plannedStartMs: onGrid(r.uniform(0, latestStartMs)),
        stayMs: onGrid(r.uniform(WATCH_MIN_STAY_MS, WATCH_MAX_STAY_MS + STEP_MS)),
        objectId: null,
      });
    }
  }
  // Moving only the earliest start (rather than redrawing plans until one qualifies) keeps the
  // counts uniform: rejection would favour plans with many appearances.
  const firstEventEndMs = durationMs * WATCH_FIRST_EVENT_FRACTION;
  let earliest: WatchAppearance | undefined;
  for (const a of plan) if (!earliest || a.plannedStartMs < earliest.plannedStartMs) earliest = a;
  if (earliest && earliest.plannedStartMs >= firstEventEndMs) earliest.plannedStartMs = onGrid(rng.uniform(0, firstEventEndMs));
  return plan.sort((a, b) => a.plannedStartMs - b.plannedStartMs || SHAPES.indexOf(a.shape) - SHAPES.indexOf(b.shape));
}

/** Plans and simulates a watch video of durationMs (10 min … 8 h). */
export function sampleWatch(rng: Rng, durationMs: number): WatchScene {
  checkWatchDuration(durationMs);
  const background = sampleBackground(rng);
  const plan = planAppearances(rng.fork(100), durationMs);
  const objects = scheduleAppearances(rng.fork(101), durationMs, plan);
  return {
    scene: { kind: 'video', width: CANVAS_WIDTH, height: CANVAS_HEIGHT, fps: WATCH_FPS, durationMs, background, objects },
    plan,
  };
}

/**
 * Carries out a plan (sorted by planned start; its `objectId`s are filled in) and returns the
 * objects with their tracks. Waiting appearances are tried at every step in plan order; one that
 * must wait does not hold back later ones that may start. Idle stretches (nothing present, nothing
 * waiting) are skipped, so the cost grows with the appearances, not with the length of the video.
 */
export function scheduleAppearances(motion: Rng, durationMs: number, plan: WatchAppearance[]): TrackedObject[] {
  const lastStartMs = durationMs - WATCH_LAST_START_MARGIN_MS;
  const objects: TrackedObject[] = [];
  let present: TrackedObject[] = [];
  const lastLeftMs = new Map<string, number>();
  const kind = (o: { shape: Shape; color: Color }): string => `${o.color} ${o.shape}`;
  let waiting: WatchAppearance[] = [];
  let next = 0;

  const mayStart = (a: WatchAppearance, tMs: number): boolean => {
    if (present.length >= MAX_OBJECTS) return false;
    if (present.some((o) => kind(o) === kind(a))) return false;
    const left = lastLeftMs.get(kind(a));
    return left === undefined || tMs - left >= WATCH_SAME_KIND_GAP_MS;
  };

  for (let t = 0; t < durationMs; ) {
    for (const o of present) if (o.leaveMs <= t) lastLeftMs.set(kind(o), o.leaveMs);
    present = present.filter((o) => o.leaveMs > t);
    while (next < plan.length && plan[next].plannedStartMs <= t) waiting.push(plan[next++]);
    if (t > lastStartMs) waiting = [];
    waiting = waiting.filter((a) => {
      if (!mayStart(a, t)) return true;
      const spec = { id: objects.length, shape: a.shape, color: a.color, size: a.size };
      const o = launchObject(motion, spec, t, present, Math.min(durationMs, t + a.stayMs), MAX_SPEED_PX_PER_S);
      if (!o) return true;
      a.objectId = o.id;
      objects.push(o);
      present.push(o);
      return false;
    });
    stepMotion(present, t);
    if (present.length > 0 || waiting.length > 0) t += STEP_MS;
    else t = next < plan.length ? plan[next].plannedStartMs : durationMs;
  }
  return objects;
}
