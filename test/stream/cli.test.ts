// `winnow serve` flags as a user passes them (a real process): --host, --port, --model, --codebook,
// --token (and WINNOW_TOKEN), --allow-path, --allow-url-scheme, --max-sessions, --examples. Each flag
// is checked by its effect on the running server, not by parsing alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BUNDLED_CODEBOOK, MODEL_DIR, modelSkip, withTempDir } from '../shared/index.js';
import { TestClient, renderVideo, startServe } from './helpers.js';

type ErrorEvent = { type: 'error'; error: { code: string; event_id: string | null } };

test('winnow serve: a non-loopback --host without a token exits 2 before loading the model', async () => {
  const s = startServe(['--host', '0.0.0.0', '--port', '0']);
  const { code } = await s.exited;
  assert.equal(code, 2, s.stderr());
  assert.match(s.stderr(), /WINNOW_ERR_INVALID_ARGUMENT/);
});

test('winnow serve flags: token, allow-path, allow-url-scheme, max-sessions, max-question-chars, max-new-tokens, model, codebook, examples', { skip: modelSkip, timeout: 90_000 }, async () => {
  await withTempDir('winnow-cli-serve-', async (dir) => {
    const s = startServe(
      [
        '--host', '127.0.0.1', '--port', '0',
        '--model', MODEL_DIR, '--codebook', BUNDLED_CODEBOOK,
        '--allow-path', join(dir, 'media'),
        '--allow-url-scheme', 'rtsp,https',
        '--max-sessions', '1',
        '--max-question-chars', '40',
        '--max-new-tokens', '16',
        '--examples',
      ],
      // The token from the environment: --token would show in `ps`.
      { WINNOW_TOKEN: 'cli-test-token-1' },
    );
    try {
      const [{ mp4 }] = await Promise.all([renderVideo(dir, 5, 2), mkdir(join(dir, 'media'))]);
      await copyFile(mp4, join(dir, 'media', 'clip.mp4'));
      const info = await s.ready;
      assert.match(info.listening, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
      const http = info.listening.replace(/^ws/, 'http');
      assert.equal(info.examples, `${http}examples/webcam.html`);

      // --token / WINNOW_TOKEN: required on the socket and /metrics, not on /healthz.
      await assert.rejects(TestClient.connect(info.listening), (e: Error & { status?: number; code?: string }) => e.status === 401 && e.code === 'WINNOW_ERR_UNAUTHORIZED');
      assert.equal((await fetch(`${http}metrics`)).status, 401);
      assert.equal((await fetch(`${http}healthz`)).status, 200);
      // --examples: the webcam page is served.
      const page = await fetch(`${http}examples/webcam.html`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /getUserMedia/);

      const c = await TestClient.connect(info.listening, { token: 'cli-test-token-1' });
      const created = await c.wait<{ type: 'session.created'; session: { model: string; limits: Record<string, number>; config: { pruning: { strategy: string } } } }>('session.created');
      // --model / --codebook: the named model, and codebook strategies are available.
      assert.equal(created.session.model, 'winnow-tiny');
      assert.equal(created.session.limits.maxSessions, 1);
      assert.equal(created.session.limits.maxNewTokens, 16);
      // --max-question-chars 40: 41 characters are refused, the session carries on.
      c.send({ type: 'conversation.item.create', event_id: 'long', text: 'x'.repeat(41) });
      assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'long')).error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');
      assert.equal(created.session.limits.maxQuestionChars, 40);
      // --max-new-tokens 16: a session may not ask for more.
      c.send({ type: 'session.update', event_id: 'gen', session: { generation: { maxNewTokens: 17 } } });
      assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'gen')).error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');
      c.send({ type: 'session.update', event_id: 'cb', session: { pruning: { strategy: 'threshold', tau: 0.9, temporal: 0.95, minKeep: 4 } } });
      const updated = await c.wait<{ type: 'session.updated'; event_id?: string; session: { config: { pruning: Record<string, unknown> } } }>('session.updated', (e) => e.event_id === 'cb');
      assert.deepEqual(updated.session.config.pruning, { strategy: 'threshold', tau: 0.9, temporal: 0.95, minKeep: 4 });

      // --max-sessions 1: a second client is refused with 1013.
      const extra = await TestClient.connect(info.listening, { token: 'cli-test-token-1' });
      assert.equal(await extra.closed, 1013);
      assert.equal(extra.ofType<ErrorEvent>('error')[0].error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');

      // --allow-url-scheme rtsp,https: http is refused, rtsp is opened.
      c.send({ type: 'source.open', event_id: 'u1', url: 'http://127.0.0.1:1/a.mp4' });
      assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'u1')).error.code, 'WINNOW_ERR_FORBIDDEN_SOURCE');
      c.send({ type: 'source.open', url: 'rtsp://127.0.0.1:1/cam' });
      const rtsp = await c.wait<{ type: 'source.opened'; source: { kind: string; live: boolean } }>('source.opened');
      assert.deepEqual([rtsp.source.kind, rtsp.source.live], ['url', true]);
      c.send({ type: 'source.close' });
      assert.equal((await c.wait<{ type: 'source.ended'; reason: string }>('source.ended')).reason, 'closed');

      // --allow-path: a file under the root plays; one outside is refused.
      c.send({ type: 'source.open', event_id: 'p1', path: mp4 });
      assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'p1')).error.code, 'WINNOW_ERR_FORBIDDEN_SOURCE');
      c.send({ type: 'source.open', path: 'clip.mp4' });
      const ended = await c.next<{ type: 'source.ended'; reason: string; frames: number }>('source.ended', () => true, 30_000);
      assert.deepEqual([ended.reason, ended.frames], ['end', 2]);
      // Threshold pruning with the codebook ran on them (at least minKeep tokens each, never more than all).
      const frames = c.ofType<{ type: 'frame.processed'; kept: number; total: number }>('frame.processed');
      assert.equal(frames.length, 2);
      for (const f of frames) assert.ok(f.kept >= 4 && f.kept <= f.total, JSON.stringify(f));
      await c.close();

      s.child.kill('SIGTERM');
      assert.deepEqual(await s.exited, { code: 0, signal: null });
    } finally {
      s.child.kill('SIGKILL');
    }
  });
});
