// Properties about pushed inputs: images of every kind in a jpeg input, binary frames where none is
// expected, and pushed containers whose frames are too big or that name files they must not reach.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AnyEvent } from '../../helpers.js';
import { forAll, forAllSessions, property } from '../check.js';
import { answersTo, assertServes, errorsOf, sync, until, withSession } from '../clients.js';
import { imageArb, imageBytes, isJpegMagic } from '../images.js';
import { mediaLimits } from '../protocol.js';

type Ended = AnyEvent & { frames: number; dropped: number; reason: string; error?: { code: string } };

export const jpegProperty = property(
  {
    name: 'jpeg input: images of every kind',
    what: 'a jpeg input fed PNG/GIF/WebP/TIFF/BMP/SVG/random bytes → WINNOW_ERR_CORRUPT_INPUT (not-jpeg for non-JPEG magic), JPEGs above maxInputPixels (real or a patched header) → LIMIT_EXCEEDED, small JPEGs (any quality/progressive/CMYK) → frame.processed with a finite ptsMs, a JPEG without input_video.frame → PROTOCOL; source.ended counts exactly the frames',
    testRuns: 60,
    benchRuns: 1_500,
  },
  (env) =>
    forAllSessions(env, env.media, fc.record({ images: fc.array(imageArb, { minLength: 1, maxLength: 4 }), base: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 10_000 }), live: fc.boolean() }), async ({ images, base, live }, c) => {
      const start = c.events.length;
      c.send({ type: 'input_video.start', format: 'jpeg', live });
      const expected: string[] = [];
      let frames = 0;
      let protocol = 0;
      let k = 0;
      for (const img of images) {
        if (img.kind === 'no-frame') {
          c.sendRaw(await imageBytes({ kind: 'jpeg', width: 8, height: 8, quality: 80, progressive: false, chroma: '4:2:0', cmyk: false }), true);
          protocol++;
          continue;
        }
        const bytes = await imageBytes(img);
        c.send({ type: 'input_video.frame', ptsMs: base + k++ * 1000 });
        c.sendRaw(bytes, true);
        if (img.kind === 'jpeg') {
          if (img.width * img.height > mediaLimits.maxInputPixels) expected.push('WINNOW_ERR_LIMIT_EXCEEDED');
          else frames++;
        } else if (img.kind === 'jpeg-header-bomb') expected.push('WINNOW_ERR_LIMIT_EXCEEDED');
        else expected.push(isJpegMagic(bytes) ? 'WINNOW_ERR_CORRUPT_INPUT' : 'WINNOW_ERR_CORRUPT_INPUT/not-jpeg');
      }
      c.send({ type: 'input_video.end' });
      const ended = (await until(() => c.events.slice(start).find((e) => e.type === 'source.ended'), 30_000)) as Ended | undefined;
      assert.ok(ended, 'source.ended');
      await sync(c);
      const got = c.events.slice(start);
      const errs = errorsOf(got);
      const protocolErrs = errs.filter((e) => e.error.code === 'WINNOW_ERR_PROTOCOL');
      assert.equal(protocolErrs.length, protocol, 'a JPEG without input_video.frame is a protocol error');
      for (const e of protocolErrs) assert.equal(e.error.details?.reason, 'jpeg-without-frame');
      const decodeErrs = errs.filter((e) => e.error.code !== 'WINNOW_ERR_PROTOCOL').map((e) => (e.error.details?.reason === 'not-jpeg' ? `${e.error.code}/not-jpeg` : e.error.code));
      // A JPEG-looking header followed by garbage is corrupt (whatever details.reason says); other magic is not-jpeg.
      const seen = decodeErrs.map((g, i) => (expected[i] === 'WINNOW_ERR_CORRUPT_INPUT' && g === 'WINNOW_ERR_CORRUPT_INPUT/not-jpeg' ? expected[i] : g));
      assert.deepEqual(seen, expected, 'one error per bad image, in order');
      const processed = got.filter((e) => e.type === 'frame.processed') as (AnyEvent & { ptsMs: number })[];
      assert.equal(processed.length, frames, 'one frame per good JPEG');
      for (const f of processed) assert.ok(Number.isFinite(f.ptsMs) && f.ptsMs >= 0, `ptsMs ${f.ptsMs}`);
      assert.equal(ended.reason, 'end');
      assert.equal(ended.frames, frames);
      assert.equal(ended.dropped, 0);
    }),
);

export const binaryProperty = property(
  {
    name: 'binary frames out of place',
    what: 'binary messages (0 B – 100 KiB) before input_video.start → PROTOCOL binary-before-start; in a jpeg input without input_video.frame → PROTOCOL jpeg-without-frame; after input_video.end → PROTOCOL; the connection stays usable',
    testRuns: 30,
    benchRuns: 1_000,
  },
  (env) =>
    forAll(
      fc.array(fc.record({ state: fc.constantFrom('none', 'jpeg', 'ended'), len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100 * 1024 })), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
      async (frames) => {
        for (const f of frames) {
          await withSession(env.media, env.token, async (c) => {
            if (f.state !== 'none') c.send({ type: 'input_video.start', format: 'jpeg' });
            if (f.state === 'ended') {
              c.send({ type: 'input_video.end' });
              await until(() => c.events.find((e) => e.type === 'source.ended'), 5_000);
            }
            await sync(c);
            const errs = errorsOf(await answersTo(c, () => c.sendRaw(Buffer.alloc(f.len, f.byte), true)));
            assert.equal(errs.length, 1, `${f.state}: one error`);
            assert.equal(errs[0].error.code, 'WINNOW_ERR_PROTOCOL');
            assert.equal(errs[0].error.event_id, null);
            if (f.state === 'none') assert.equal(errs[0].error.details?.reason, 'binary-before-start');
            if (f.state === 'jpeg') assert.equal(errs[0].error.details?.reason, 'jpeg-without-frame');
          });
        }
        await assertServes(env, env.media);
      },
    ),
);

export const containerProperty = property(
  {
    name: 'pushed container bombs',
    what: 'pushed mp4/webm/mpegts/mjpeg in random chunks: frames above maxInputPixels (2048², 4096×64, 66×64 vs a 64×64 limit) → source.ended error (or error event) WINNOW_ERR_LIMIT_EXCEEDED and no frame.processed; at or under the limit → frames; pushed playlists/concat scripts naming the secret → no frames',
    testRuns: 20,
    benchRuns: 400,
  },
  (env) =>
    forAllSessions(env, env.media, fc.record({ clip: fc.integer({ min: 0, max: env.clips.length - 1 }), chunk: fc.integer({ min: 1, max: 64 * 1024 }), live: fc.boolean() }), async ({ clip: ci, chunk, live }, c) => {
      const clip = env.clips[ci];
      const start = c.events.length;
      c.send({ type: 'input_video.start', format: clip.format, live });
      for (let i = 0; i < clip.bytes.length; i += chunk) c.sendRaw(clip.bytes.subarray(i, i + chunk), true);
      c.send({ type: 'input_video.end' });
      const ended = (await until(() => c.events.slice(start).find((e) => e.type === 'source.ended'), 30_000 * env.patience)) as Ended | undefined;
      assert.ok(ended, `${clip.name}: source.ended`);
      const got = c.events.slice(start);
      const frames = got.filter((e) => e.type === 'frame.processed').length;
      if (clip.pixels === null) {
        assert.equal(frames, 0, `${clip.name}: frames from a pushed playlist; ${JSON.stringify(ended)}`);
        assert.equal(ended.reason, 'error');
      } else if (clip.pixels > mediaLimits.maxInputPixels) {
        assert.equal(frames, 0, `${clip.name} (${clip.pixels} px > ${mediaLimits.maxInputPixels}): ${frames} frame.processed; ${JSON.stringify(ended)}`);
        const limitError = ended.error?.code === 'WINNOW_ERR_LIMIT_EXCEEDED' || errorsOf(got).some((e) => e.error.code === 'WINNOW_ERR_LIMIT_EXCEEDED');
        assert.ok(limitError, `${clip.name}: ${JSON.stringify(ended)}`);
      } else {
        assert.equal(ended.reason, 'end', `${clip.name}: ${JSON.stringify(ended)}`);
        assert.ok(frames >= 1 && ended.frames === frames, `${clip.name}: ${frames} frames`);
      }
    }),
);
