// examples/webcam.html in real headless Chromium (Debian's `chromium`, driven by playwright-core):
// Chromium's fake camera plays a Y4M rendered here; the page records WebM with MediaRecorder,
// streams it to `winnow serve --examples`, shows kept-token counts and streams an answer back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { createServer, type WinnowEngine, type WinnowServer } from '../../src/stream/index.js';
import { ffmpegSync, fileTempDir, modelSkip, waitUntil } from '../shared/index.js';
import { sharedEngine } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = !existsSync(CHROMIUM)
  ? `SKIPPED: Debian chromium is not installed at ${CHROMIUM} (apt-get install -y chromium); the webcam example is untested`
  : modelSkip;
if (typeof skip === 'string' && skip.startsWith('SKIPPED')) process.stderr.write(`${skip}\n`);

interface PageState {
  frames: number;
  lastKept: number | null;
  lastTotal: number | null;
  dropped: number;
  answers: { question: string | null; text: string; status: string; usage: { visualTokensKept: number; visualTokensTotal: number } }[];
  errors: string[];
  status: string;
}

const tmp = fileTempDir('winnow-webcam-');
let engine: WinnowEngine;
let server: WinnowServer;
let browser: Browser;

before(async () => {
  if (skip) return;
  const y4m = join(tmp.dir, 'camera.y4m');
  // A moving test pattern with a red box: 4 s at 15 fps, looped by Chromium.
  ffmpegSync(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=15', '-t', '4', '-vf', 'drawbox=x=120:y=80:w=60:h=60:color=red:t=fill', '-pix_fmt', 'yuv420p', y4m]);
  engine = await sharedEngine();
  server = await createServer({ port: 0, engine, examples: true, token: 'webcam-test-token' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-video-capture=${y4m}`,
    ],
  });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  await engine?.close();
});

test('webcam.html: camera → MediaRecorder WebM → socket; live kept-token counts and a streamed answer', { skip, timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  const http = server.url.replace('ws', 'http');
  const consoleErrors: string[] = [];
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await page.goto(`${http}examples/webcam.html?autostart=1&token=webcam-test-token&askAfterFrames=3&question=${encodeURIComponent('describe the picture.')}`);
  await page.waitForFunction(() => (window as unknown as { winnowState: PageState }).winnowState.answers.length >= 1, null, { timeout: 90_000 });
  const state = await page.evaluate(() => (window as unknown as { winnowState: PageState }).winnowState);
  assert.deepEqual(state.errors, []);
  assert.deepEqual(consoleErrors, []);
  assert.equal(state.status, 'streaming');
  assert.ok(state.frames >= 3, `frames ${state.frames}`);
  assert.equal(state.lastTotal, 49);
  assert.ok(state.lastKept !== null && state.lastKept > 0 && state.lastKept <= 49);
  const a = state.answers[0];
  assert.equal(a.question, 'describe the picture.');
  assert.equal(a.status, 'completed');
  assert.ok(a.usage.visualTokensTotal >= 3 * 49);
  // The page shows what the state says.
  assert.ok(Number(await page.textContent('#frames')) >= state.frames);
  assert.match((await page.textContent('#kept')) ?? '', /^\d+ \/ 49$/);
  assert.match((await page.textContent('#answers')) ?? '', /Q: describe the picture\./);
  // The server sees one live WebM input with one ffmpeg child; closing the page frees it.
  assert.equal(server.sessionCount, 1);
  const session = server.sessions[0];
  assert.equal(session.inputFormat, 'webm');
  await page.close();
  await waitUntil(() => server.sessionCount === 0, 10_000, 50);
  assert.equal(server.sessionCount, 0);
});
