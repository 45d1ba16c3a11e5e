import { formatHms } from './hms.js';
import { Rng } from './rng.js';
import type { ObjectSpec, PlacedObject, VideoScene } from './scene.js';
import { CANVAS_WIDTH, COLORS, NUMBER_WORDS, SHAPES, type Color, type Shape } from './world.js';

export type QuestionFamily = 'F1' | 'F2' | 'F3' | 'F4' | 'C1' | 'V1' | 'V2' | 'V3' | 'V4';

export interface QaPair {
  id: QuestionFamily;
  question: string;
  answer: string;
  /** The time the question refers to: the frame at tMs (F, C) or all frames up to tMs (V). */
  tMs: number;
}

const MIDLINE_MIN_DISTANCE_PX = 20;
const V2_MIN_SEPARATION_MS = 1000;

export function caption(objects: readonly PlacedObject[]): string {
  if (objects.length === 0) return 'nothing';
  return [...objects]
    .sort((a, b) => a.x - b.x)
    .map((o) => `${o.color} ${o.shape}`)
    .join(' and ');
}

/** Every question the world allows about one frame, with `no` answers for F3 sampled to about half. */
export function frameQuestions(objects: readonly PlacedObject[], tMs: number, rng: Rng): QaPair[] {
  const out: QaPair[] = [];
  for (const shape of SHAPES) {
    const ofShape = objects.filter((o) => o.shape === shape);
    if (ofShape.length === 1) out.push({ id: 'F1', question: `what color is the ${shape}?`, answer: ofShape[0].color, tMs });
    out.push({ id: 'F2', question: `how many ${shape}s are there?`, answer: NUMBER_WORDS[ofShape.length], tMs });
  }
  const yes = objects.map((o) => ({ color: o.color, shape: o.shape }));
  const absent: { color: Color; shape: Shape }[] = [];
  for (const shape of SHAPES) for (const color of COLORS) if (!objects.some((o) => o.shape === shape && o.color === color)) absent.push({ color, shape });
  rng.shuffle(absent);
  // About half yes: as many `no` as `yes`, and at least one question even for an empty frame.
  const noCount = Math.max(1, yes.length);
  for (const q of yes) out.push({ id: 'F3', question: `is there a ${q.color} ${q.shape}?`, answer: 'yes', tMs });
  for (const q of absent.slice(0, noCount)) out.push({ id: 'F3', question: `is there a ${q.color} ${q.shape}?`, answer: 'no', tMs });
  for (const o of objects) {
    if (Math.abs(o.x - CANVAS_WIDTH / 2) < MIDLINE_MIN_DISTANCE_PX) continue;
    out.push({ id: 'F4', question: `is the ${o.color} ${o.shape} on the left or the right?`, answer: o.x < CANVAS_WIDTH / 2 ? 'left' : 'right', tMs });
  }
  out.push({ id: 'C1', question: 'describe the picture.', answer: caption(objects), tMs });
  return out;
}

/** The objects that appeared at or before tMs, in order of appearance. */
export function appearedBy(scene: VideoScene, tMs: number): ObjectSpec[] {
  return scene.objects.filter((o) => o.appearMs <= tMs).sort((a, b) => a.appearMs - b.appearMs || a.id - b.id);
}

export interface VideoQuestionOptions {
  /** Also ask V4 (`when did the first {shape} appear?`, answered `H:MM:SS`): the watch profile's question. */
  when?: boolean;
}

/** Video questions about everything seen up to tMs. */
export function videoQuestions(scene: VideoScene, tMs: number, rng: Rng, options: VideoQuestionOptions = {}): QaPair[] {
  const out: QaPair[] = [];
  const seen = scene.objects.filter((o) => o.appearMs <= tMs);
  const combos = new Set(seen.map((o) => `${o.color} ${o.shape}`));
  const absent: string[] = [];
  for (const shape of SHAPES) for (const color of COLORS) if (!combos.has(`${color} ${shape}`)) absent.push(`${color} ${shape}`);
  rng.shuffle(absent);
  for (const c of combos) out.push({ id: 'V1', question: `did a ${c} appear?`, answer: 'yes', tMs });
  for (const c of absent.slice(0, Math.max(1, combos.size))) out.push({ id: 'V1', question: `did a ${c} appear?`, answer: 'no', tMs });
  for (const shape of SHAPES) {
    const ofShape = seen.filter((o) => o.shape === shape).sort((a, b) => a.appearMs - b.appearMs);
    out.push({ id: 'V3', question: `how many ${shape}s appeared?`, answer: NUMBER_WORDS[Math.min(9, ofShape.length)], tMs });
    if (ofShape.length === 0) continue;
    const first = ofShape[0];
    // V4 needs no unique first: firsts under V2's second apart are both within V4's tolerance.
    if (options.when) out.push({ id: 'V4', question: `when did the first ${shape} appear?`, answer: formatHms(first.appearMs), tMs });
    // Asked only when the first is unique even for a 1-fps viewer: the next one of that shape
    // appeared at least a second later.
    if (ofShape.length > 1 && ofShape[1].appearMs - first.appearMs < V2_MIN_SEPARATION_MS) continue;
    out.push({ id: 'V2', question: `what color was the first ${shape} to appear?`, answer: first.color, tMs });
  }
  return out;
}
