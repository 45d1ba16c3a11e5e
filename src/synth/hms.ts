// Times of day in a video as the watch profile's V4 answers them: `H:MM:SS` from the start of the
// video. Formatting is exact; parsing is lenient, because a model's answer is scored on the time
// it means, not on how it spelled it.
import { WinnowError } from '../errors.js';

/** How far a V4 answer may be from the truth and still count as right. */
export const HMS_TOLERANCE_MS = 2000;

/** `H:MM:SS` of a time from the video start, to the nearest second: 425_000 → `0:07:05`. */
export function formatHms(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `a time must be a finite number of ms ≥ 0, not ${ms}`);
  const totalS = Math.round(ms / 1000);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

const CLOCK = /(?<![\d:.])(\d{1,3}):(\d{1,2})(?::(\d{1,2}))?(?:[.,](\d+))?(?![\d:])/;
const UNIT = /(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)(?![a-z])/g;
const UNIT_SECONDS: Record<string, number> = { h: 3600, m: 60, s: 1 };

/**
 * The time a written answer means, in ms from the video start, or null when it names none.
 * Reads the first clock time in the text (`0:07:05`, `00:07:05`, `0:07:05.4`, or two fields
 * `7:05` = minutes and seconds; every field after the first below 60), else numbers with units
 * (`7m5s`, `1h 2m 3s`, `7 min 5 sec`, `425s`, the frame marker form `t=425s`; each unit once), else
 * a bare number of seconds (`425`). Words around the time are ignored: `at 0:07:05.`
 */
export function parseHms(text: string): number | null {
  const t = text.trim().toLowerCase();
  const clock = CLOCK.exec(t);
  if (clock) {
    const fields = [clock[1], clock[2], clock[3]].filter((f): f is string => f !== undefined).map(Number);
    if (fields.slice(1).some((f) => f >= 60)) return null;
    const [h, m, s] = fields.length === 3 ? fields : [0, fields[0], fields[1]];
    const fraction = clock[4] === undefined ? 0 : Number(`0.${clock[4]}`);
    return Math.round((h * 3600 + m * 60 + s + fraction) * 1000);
  }
  const seen = new Set<string>();
  let totalS = 0;
  for (const [, value, unit] of t.matchAll(UNIT)) {
    const u = unit[0];
    if (seen.has(u)) return null;
    seen.add(u);
    totalS += Number(value) * UNIT_SECONDS[u];
  }
  if (seen.size > 0) return Math.round(totalS * 1000);
  const bare = /^(?:t\s*=\s*)?(\d+(?:\.\d+)?)[.!]?$/.exec(t);
  return bare ? Math.round(Number(bare[1]) * 1000) : null;
}

/** V4 scoring: the predicted answer names a time within HMS_TOLERANCE_MS of the expected one. */
export function hmsWithinTolerance(predicted: string, expected: string, toleranceMs = HMS_TOLERANCE_MS): boolean {
  const want = parseHms(expected);
  if (want === null) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `the expected answer ${JSON.stringify(expected)} is not a time`);
  const got = parseHms(predicted);
  return got !== null && Math.abs(got - want) <= toleranceMs;
}
