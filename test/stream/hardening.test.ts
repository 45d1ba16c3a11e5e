// The server's defences that need no model: bounded message validation, hostile type names, the
// auth throttle, strict JPEG inputs and the limits' own checks. The fuzz suite drives the same
// rules through a real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { DEFAULT_LIMITS, checkMessageShape, parseClientEvent, resolveLimits } from '../../src/stream/index.js';
import { AuthThrottle } from '../../src/stream/access.js';
import { decodeJpeg, isJpeg } from '../../src/stream/jpeg.js';
import { isWinnowError } from '../../src/errors.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SourcePolicy } from '../../src/ingest/index.js';
import { runAsk } from '../../src/cli/commands/ask.js';
import { ffmpegSync, modelSkip, withTempDir } from '../shared/index.js';

test('hostile type names are unknown types with the event_id echoed, never a lookup on Object.prototype', () => {
  for (const type of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', '__defineGetter__']) {
    const r = parseClientEvent(`{"type":${JSON.stringify(type)},"event_id":"e-${type}"}`);
    assert.equal(r.ok, false, type);
    if (!r.ok) {
      assert.equal(r.reason, 'unknown-type', type);
      assert.equal(r.eventId, `e-${type}`, type);
    }
  }
  // A `__proto__` key in JSON is an own property after JSON.parse; it must not make a type appear.
  const r = parseClientEvent('{"__proto__":{"type":"session.update"},"event_id":"p"}');
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.eventId, 'p');
});

test('structure bounds refuse a million-entry session.update in well under 50 ms, before the schema', () => {
  const watch = Array.from({ length: 1_000_000 }, (_, i) => ({ id: `w${i}`, question: 'q', everySeconds: 1 }));
  const text = JSON.stringify({ type: 'session.update', event_id: 'big', session: { watch } });
  const raw = JSON.parse(text) as unknown;
  const t0 = performance.now();
  const why = checkMessageShape(raw, DEFAULT_LIMITS);
  const r = parseClientEvent('{"type":"session.update","event_id":"big","session":{"watch":[' + '{"id":"a","question":"q","everySeconds":1},'.repeat(2000) + '{"id":"b","question":"q","everySeconds":1}]}}');
  const elapsedMs = performance.now() - t0;
  assert.match(why ?? '', /maxJsonNodes/);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.reason, 'structure');
    assert.equal(r.eventId, 'big');
  }
  assert.ok(elapsedMs < 50, `took ${elapsedMs.toFixed(1)} ms`);
  // Depth: nesting past maxJsonDepth is refused without recursion.
  const deep = '{"type":"session.update","session":' + '{"a":'.repeat(DEFAULT_LIMITS.maxJsonDepth) + '1' + '}'.repeat(DEFAULT_LIMITS.maxJsonDepth) + '}';
  const d = parseClientEvent(deep);
  assert.equal(d.ok, false);
  if (!d.ok) assert.equal(d.reason, 'structure');
  // Every real event fits the default bounds, with the largest watch list the schema allows.
  const maxWatch = Array.from({ length: 64 }, (_, i) => ({ id: `w${i}`, question: 'q?', everySeconds: 1, notify: 'change' }));
  assert.equal(checkMessageShape({ type: 'session.update', event_id: 'x', session: { fps: 1, pruning: { strategy: 'ratio', ratio: 0.5 }, generation: { maxNewTokens: 8 }, watch: maxWatch } }), undefined);
});

test('numbers outside sane ranges are schema errors: fps, ptsMs, maxContextTokens', () => {
  for (const fps of [5e-324, 0, -1, 1e-4, 31, 1e308]) {
    const r = parseClientEvent(JSON.stringify({ type: 'session.update', session: { fps } }));
    assert.equal(r.ok, false, `fps ${fps}`);
  }
  for (const fps of [0.001, 0.5, 30]) assert.equal(parseClientEvent(JSON.stringify({ type: 'session.update', session: { fps } })).ok, true, `fps ${fps}`);
  for (const ptsMs of [-1, 2 ** 60]) assert.equal(parseClientEvent(JSON.stringify({ type: 'input_video.frame', ptsMs })).ok, false, `ptsMs ${ptsMs}`);
  assert.equal(parseClientEvent(JSON.stringify({ type: 'session.update', session: { maxContextTokens: 2 ** 40 } })).ok, false);
});

test('AuthThrottle: maxFailures per window per address, then a retry-after until the window ends; bounded memory', () => {
  const t = new AuthThrottle(3, 1_000, 100);
  for (let i = 0; i < 3; i++) {
    assert.equal(t.retryAfterMs('a', 0), 0);
    t.fail('a', i);
  }
  assert.equal(t.retryAfterMs('a', 10), 990);
  assert.equal(t.retryAfterMs('b', 10), 0, 'other addresses are not affected');
  assert.equal(t.retryAfterMs('a', 1_000), 0, 'the window ended');
  t.fail('a', 1_001);
  assert.equal(t.retryAfterMs('a', 1_002), 0, 'a new window starts with one failure');
  for (let i = 0; i < 1_000; i++) t.fail(`x${i}`, 2_000);
  assert.ok(t.size <= 100, `remembers ${t.size} addresses`);
});

test('a jpeg input takes JPEG only: PNG, GIF, WebP, TIFF and SVG are refused before any decoder runs; size from the header', async () => {
  const rgb = { width: 40, height: 30, channels: 3 as const, background: { r: 200, g: 10, b: 10 } };
  const others: Record<string, Buffer> = {
    png: await sharp({ create: rgb }).png().toBuffer(),
    gif: await sharp({ create: rgb }).gif().toBuffer(),
    webp: await sharp({ create: rgb }).webp().toBuffer(),
    tiff: await sharp({ create: rgb }).tiff().toBuffer(),
    svg: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000"><rect width="10" height="10"/></svg>'),
    random: Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 255)),
    empty: Buffer.alloc(0),
  };
  for (const [name, bytes] of Object.entries(others)) {
    await assert.rejects(decodeJpeg(bytes, DEFAULT_LIMITS.maxInputPixels, 0), (e: unknown) => {
      assert.ok(isWinnowError(e));
      assert.equal(e.code, 'WINNOW_ERR_CORRUPT_INPUT', name);
      assert.equal(e.details.reason, 'not-jpeg', name);
      return true;
    });
  }
  assert.equal((await decodeJpeg(others.png, 1e6, 0).catch((e: { details: { detected: string } }) => e.details.detected)), 'png');
  const jpeg = await sharp({ create: rgb }).jpeg().toBuffer();
  assert.ok(isJpeg(jpeg));
  const ok = await (await decodeJpeg(jpeg, 40 * 30, 0)).raw().toBuffer({ resolveWithObject: true });
  assert.equal(ok.info.width, 40);
  await assert.rejects(decodeJpeg(jpeg, 40 * 30 - 1, 5), (e: unknown) => isWinnowError(e) && e.code === 'WINNOW_ERR_LIMIT_EXCEEDED' && e.details.limit === 'maxInputPixels');
  // A JPEG magic on a truncated body fails at the header, not later in the pipeline.
  await assert.rejects(decodeJpeg(jpeg.subarray(0, 20), 1e6, 0), (e: unknown) => isWinnowError(e) && e.code === 'WINNOW_ERR_CORRUPT_INPUT');
});

test('limits: unknown names are refused; the text limit follows a smaller payload limit', () => {
  assert.throws(() => resolveLimits({ maxJpegPixels: 1 } as never), (e: unknown) => isWinnowError(e) && e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal(resolveLimits({ maxPayloadBytes: 1024 }).maxTextMessageBytes, 1024);
  assert.throws(() => resolveLimits({ maxPayloadBytes: 1024, maxTextMessageBytes: 2048 }), (e: unknown) => isWinnowError(e) && e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
});

test('winnow ask through the library API takes the same source policy as the server', { skip: modelSkip }, async () => {
  await withTempDir('winnow-ask-policy-', async (dir) => {
    const root = join(dir, 'root');
    await mkdir(root);
    const secret = join(dir, 'secret.mp4');
    ffmpegSync(['-f', 'lavfi', '-i', 'color=c=red:s=64x64:r=2', '-t', '1', '-pix_fmt', 'yuv420p', secret]);
    await writeFile(join(root, 'evil.m3u8'), `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n../secret.mp4\n#EXT-X-ENDLIST\n`);
    const sourcePolicy = new SourcePolicy({ allowPaths: [root], allowUrlSchemes: ['http'] });
    for (const named of [secret, 'evil.m3u8', `http:/../../../../..${secret}`, `file://${secret}`]) {
      let frames = 0;
      await assert.rejects(
        runAsk(named, ['what is in the picture?'], { fps: 1, sourcePolicy }, { log: () => undefined, onFrame: () => frames++ }),
        (e: unknown) => isWinnowError(e) && e.code === 'WINNOW_ERR_FORBIDDEN_SOURCE',
        named,
      );
      assert.equal(frames, 0, named);
    }
  });
});
