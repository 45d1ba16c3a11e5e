// Properties about server-side sources: source.open {path} and {url} built from every trick that
// could reach the secret clip outside the allowed roots must never yield a frame.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AnyEvent } from '../../helpers.js';
import { forAllSessions, property, Tally, type FuzzProperty } from '../check.js';
import { errorsOf, sync, until, withSession, type ErrorEvent } from '../clients.js';
import type { FuzzEnv } from '../env.js';
import { ROOT_FILES } from '../fixtures.js';

export function sourceStrings(env: FuzzEnv): fc.Arbitrary<string> {
  const secret = env.secret;
  const root = env.root;
  const evilPort = new URL(env.evilBase).port;
  const pieces = [
    'http:', 'rtsp:', 'HTTP:', 'RtSp:', 'file:', 'https:', 'concat:', 'subfile,,start,0,end,0,,:', 'hls+file:', 'data:', 'pipe:', 'fd:', 'cache:', 'crypto+file:',
    '/', '//', '///', '..', '/..', '../', '%2e', '%2e%2e', '%2f', '%252e', '\\', '\\..', '\0', ' ', '@', '#', '?', ':', '.', '~',
    '127.0.0.1', '127.0.0.1:1', 'localhost:1', '[::1]:1', 'user:pw@', `127.0.0.1:${evilPort}`, '0:1',
    secret, 'secret.mp4', 'private', 'private/secret.mp4', root, `${root}/`, '/..'.repeat(12), 'abs.m3u8', 'file.m3u8', 'redir-file', 'redir-abs',
    ...ROOT_FILES,
  ];
  return fc.oneof(
    // ".." walks behind an allowed scheme: WHATWG sees a URL, a naive consumer sees a path.
    fc.tuple(fc.constantFrom('http:', 'rtsp:', 'HTTP:', 'http:/', 'rtsp:/', 'http:.', 'rtsp:.'), fc.integer({ min: 0, max: 14 }), fc.constantFrom(secret, secret.slice(1), `/private/secret.mp4`)).map(([s, k, t]) => `${s}${'/..'.repeat(k)}${t.startsWith('/') || k === 0 ? t : `/${t}`}`),
    // An allowed scheme and host that serves only playlists and redirects to the secret.
    fc.tuple(fc.constantFrom('abs.m3u8', 'file.m3u8', 'redir-file', 'redir-abs'), fc.constantFrom('', '?x=1', '#f')).map(([p, q]) => `${env.evilBase}${p}${q}`),
    // Files in the root that lead out of it.
    fc.tuple(fc.constantFrom('', './', `${root}/`, `${root}//`, `${root}/./`, 'dirlink/../', `file://${root}/`), fc.constantFrom(...ROOT_FILES)).map(([p, t]) => p + t),
    // The secret named directly, encoded, or walked to.
    fc.constantFrom(secret, `file://${secret}`, `${root}/../private/secret.mp4`, '../private/secret.mp4', '%2e%2e/private/secret.mp4', '..%2fprivate%2fsecret.mp4', `${secret}\0.m3u8`, `${root}/link.mp4/`, 'dirlink/../../private/secret.mp4', `${root}\\..\\private\\secret.mp4`),
    // Anything from the pieces.
    fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 8 }).map((xs) => xs.join('')),
  );
}

/** Control: frames do come from an allowed clip, so "no frames" in the property means something. */
async function assertControlPlays(env: FuzzEnv): Promise<void> {
  await withSession(env.paths, env.token, async (ctl) => {
    ctl.send({ type: 'source.open', path: env.ctlClip, live: false });
    const ended = (await until(() => ctl.events.find((e) => e.type === 'source.ended'), 20_000)) as (AnyEvent & { frames: number }) | undefined;
    assert.ok(ended && ended.frames >= 1, `the control clip plays: ${JSON.stringify(ended)}`);
  });
}

export const sourceProperty = (form: 'path' | 'url'): FuzzProperty =>
  property(
    {
      name: `source.open {${form}} confinement`,
      what:
        form === 'path'
          ? 'source.open {path} built from ".." walks, encodings, NUL, schemes, the secret outside the root, symlinks and playlists/concat scripts in the root that name the secret → never a frame.processed; refused with FORBIDDEN_SOURCE (or ends without frames)'
          : 'source.open {url} (allowed schemes http, rtsp) built from schemes, ".." walks, encodings, NUL, @, hosts, the secret\'s path and an HTTP host serving playlists/redirects to it → never a frame.processed; refused with FORBIDDEN_SOURCE / INVALID_ARGUMENT or source.ended with an error',
      testRuns: form === 'path' ? 60 : 40,
      benchRuns: form === 'path' ? 2_000 : 1_000,
    },
    async (env) => {
      await assertControlPlays(env);
      const seen = new Tally();
      const asUrl = form === 'url';
      return forAllSessions(env, env.paths, fc.record({ s: sourceStrings(env), live: fc.option(fc.boolean(), { nil: undefined }) }), async ({ s, live }, c) => {
        const start = c.events.length;
        c.send({ type: 'source.open', event_id: 'src', [form]: s, ...(live === undefined ? {} : { live }) });
        const mine = (): AnyEvent[] => c.events.slice(start);
        const settled = await until(
          () => mine().find((e) => e.type === 'frame.processed' || e.type === 'source.ended' || (e.type === 'error' && (e as ErrorEvent).error.event_id === 'src')),
          1_000 * env.patience,
        );
        if (!settled) {
          // Still trying (a live source reconnecting): close it.
          c.send({ type: 'source.close' });
          assert.ok(await until(() => mine().find((e) => e.type === 'source.ended'), 10_000), 'source.ended after source.close');
        }
        await sync(c);
        const got = mine();
        const frames = got.filter((e) => e.type === 'frame.processed');
        const err = errorsOf(got).find((e) => e.error.event_id === 'src');
        const ended = got.find((e) => e.type === 'source.ended') as (AnyEvent & { reason: string; error?: { code: string } }) | undefined;
        const outcome = err ? err.error.code : ended ? `ended:${ended.reason}${ended.error ? `:${ended.error.code}` : ''}` : 'nothing';
        seen.add(outcome.split(':').slice(0, 2).join(':'));
        assert.equal(frames.length, 0, `frames from ${form} ${JSON.stringify(s)} (${outcome})`);
        const schemaInvalid = s.length === 0 || s.length > 4096;
        if (err) {
          const ok = schemaInvalid ? ['WINNOW_ERR_PROTOCOL'] : ['WINNOW_ERR_FORBIDDEN_SOURCE', 'WINNOW_ERR_INVALID_ARGUMENT'];
          assert.ok(ok.includes(err.error.code), `${JSON.stringify(s)}: ${err.error.code}`);
        } else {
          assert.ok(ended, `${JSON.stringify(s)}: neither refused nor ended`);
          // A URL that was not refused must fail (or be closed by us while it kept retrying).
          if (asUrl) assert.ok(ended.reason === 'error' || (ended.reason === 'closed' && !settled), `url ${JSON.stringify(s)} was accepted: ${outcome}`);
        }
      }, { notes: () => [`outcomes: ${seen}`] });
    },
  );
