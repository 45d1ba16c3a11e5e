// FairScheduler without a model: scripted clients and a fake encoder. Round-robin fairness, batch
// size, per-client order, answer turns, encoder failures, idle() and removal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WinnowError } from '../../src/errors.js';
import type { EncodedFrame } from '../../src/encode/index.js';
import type { Frame } from '../../src/ingest/types.js';
import { FairScheduler, type SchedulerClient } from '../../src/stream/scheduler.js';

/** A client with `frames` queued (pts = its number × 1000 + i) and `answerTurns` answer turns wanted. */
class ScriptedClient implements SchedulerClient {
  readonly queue: Frame[];
  readonly consumed: number[] = [];
  readonly failed: number[] = [];
  readonly answerTurns: number[] = [];
  constructor(
    readonly no: number,
    frames: number,
    private answersWanted = 0,
  ) {
    this.queue = Array.from({ length: frames }, (_, i) => ({ index: i, ptsMs: no * 1000 + i, width: 1, height: 1, data: new Uint8Array(3) }));
  }
  wantsAnswerTurn(): boolean {
    return this.answersWanted > 0;
  }
  takeFrame(): Frame | undefined {
    return this.queue.shift();
  }
  async consumeEncoded(encoded: EncodedFrame): Promise<void> {
    this.consumed.push(encoded.frame.ptsMs);
  }
  frameFailed(frame: Frame): void {
    this.failed.push(frame.ptsMs);
  }
  async runAnswerTurn(maxDeltas: number): Promise<void> {
    this.answerTurns.push(maxDeltas);
    this.answersWanted--;
  }
}

function encoder(batches: number[][], fail?: (batchNo: number) => boolean) {
  return async (frames: Frame[]): Promise<EncodedFrame[]> => {
    batches.push(frames.map((f) => f.ptsMs));
    if (fail?.(batches.length)) throw new WinnowError('WINNOW_ERR_INFERENCE', 'scripted failure');
    return frames.map((frame) => ({ frame, tokens: new Float32Array(1), numTokens: 1, dim: 1, gridH: 1, gridW: 1 }));
  };
}

test('each round takes one frame per client, round-robin, and keeps every client in order', async () => {
  const batches: number[][] = [];
  const s = new FairScheduler(encoder(batches), 8, 4);
  const clients = [new ScriptedClient(1, 3), new ScriptedClient(2, 1), new ScriptedClient(3, 2)];
  for (const c of clients) s.add(c);
  s.add(clients[0]);
  assert.equal(s.sessionCount, 3);
  s.wake();
  await s.idle();
  assert.deepEqual(batches, [
    [1000, 2000, 3000],
    [1001, 3001],
    [1002],
  ]);
  assert.deepEqual(clients.map((c) => c.consumed), [[1000, 1001, 1002], [2000], [3000, 3001]]);
});

test('maxBatchFrames caps a batch and the next round starts with the first client not served', async () => {
  const batches: number[][] = [];
  const s = new FairScheduler(encoder(batches), 2, 4);
  const clients = [1, 2, 3, 4, 5].map((n) => new ScriptedClient(n, 2));
  for (const c of clients) s.add(c);
  s.wake();
  await s.idle();
  assert.deepEqual(batches.slice(0, 3), [
    [1000, 2000],
    [3000, 4000],
    [5000, 1001],
  ]);
  assert.equal(batches.flat().length, 10);
  assert.ok(batches.every((b) => b.length <= 2));
});

test('a client with an answer to generate gets an answer turn of answerDeltasPerTurn and no frame that round', async () => {
  const batches: number[][] = [];
  const s = new FairScheduler(encoder(batches), 8, 3);
  const answering = new ScriptedClient(1, 2, 2);
  const other = new ScriptedClient(2, 2);
  s.add(answering);
  s.add(other);
  s.wake();
  await s.idle();
  assert.deepEqual(answering.answerTurns, [3, 3]);
  // Rounds 1 and 2: only the other client's frames; then the answering client's, in order.
  assert.deepEqual(batches, [[2000], [2001], [1000], [1001]]);
});

test('a failed encode batch reports every frame of it as failed; later batches go on', async () => {
  const batches: number[][] = [];
  const s = new FairScheduler(encoder(batches, (n) => n === 1), 8, 4);
  const a = new ScriptedClient(1, 2);
  const b = new ScriptedClient(2, 1);
  s.add(a);
  s.add(b);
  s.wake();
  await s.idle();
  assert.deepEqual(a.failed, [1000]);
  assert.deepEqual(b.failed, [2000]);
  assert.deepEqual(a.consumed, [1001]);
  assert.deepEqual(b.consumed, []);
});

test('wake while running schedules another pass; remove keeps the rotation; idle resolves when nothing runs', async () => {
  const batches: number[][] = [];
  const s = new FairScheduler(encoder(batches), 8, 4);
  await s.idle();
  const a = new ScriptedClient(1, 1);
  const b = new ScriptedClient(2, 1);
  s.add(a);
  s.add(b);
  s.wake();
  // New work arriving mid-run is picked up without another wake from outside.
  a.queue.push({ index: 9, ptsMs: 1009, width: 1, height: 1, data: new Uint8Array(3) });
  s.wake();
  s.remove(b);
  s.remove(b);
  assert.equal(s.sessionCount, 1);
  await s.idle();
  assert.deepEqual(a.consumed, [1000, 1009]);
  // b was removed after the first round had taken its frame.
  assert.deepEqual(b.consumed, [2000]);
});

test('maxBatchFrames and answerDeltasPerTurn must be positive integers', () => {
  const enc = encoder([]);
  for (const [batch, deltas] of [
    [0, 4],
    [1.5, 4],
    [8, 0],
    [8, Number.NaN],
  ]) {
    assert.throws(
      () => new FairScheduler(enc, batch, deltas),
      (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_INVALID_ARGUMENT',
    );
  }
});
