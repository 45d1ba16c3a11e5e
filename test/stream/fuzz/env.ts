// The world every fuzz property runs in: four servers on 127.0.0.1 sharing the default model (one per
// concern, each with the limits its properties need), the fixtures of fixtures.ts, and the bookkeeping
// the runner prints.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { createServer, type WinnowEngine, type WinnowServer } from '../../../src/stream/index.js';
import { renderVideo, sharedEngine, tempDir } from '../helpers.js';
import type { PropertyStats } from './check.js';
import { renderClips, startEvilHost, writeHostileRoot, type Clip } from './fixtures.js';
import { MEDIA_LIMITS, PATTERN_LIMITS, PROTO_LIMITS } from './protocol.js';

export interface FuzzEnv {
  engine: WinnowEngine;
  token: string;
  dir: string;
  proto: WinnowServer;
  media: WinnowServer;
  paths: WinnowServer;
  patterns: WinnowServer;
  root: string;
  ctlClip: string;
  secret: string;
  evilBase: string;
  clips: Clip[];
  /** Whole-process event-loop delay, reset per property. */
  eld: IntervalHistogram;
  stats: Map<string, PropertyStats>;
  /** Per-case time budget multiplier (the bench waits longer for slow sources). */
  patience: number;
  close(): Promise<void>;
}

/**
 * Renders the inputs (a secret clip outside every allowed root, hostile playlists inside one, a
 * control clip in another, pushed-container bombs), starts an HTTP server that serves only
 * playlists and redirects pointing at the secret, and the four fuzzed servers.
 */
export async function setupFuzz(options: { patience?: number } = {}): Promise<FuzzEnv> {
  const { dir, cleanup } = await tempDir('winnow-fuzz-');
  const token = `fuzz-${randomBytes(8).toString('hex')}`;
  const [engine, secretVideo, ctlVideo] = await Promise.all([sharedEngine(), renderVideo(dir, 31, 2), renderVideo(dir, 32, 1)]);
  const root = join(dir, 'root');
  const ctl = join(dir, 'ctl');
  const priv = join(dir, 'private');
  await Promise.all([mkdir(root), mkdir(ctl), mkdir(priv)]);
  const secret = join(priv, 'secret.mp4');
  await writeFile(secret, await readFile(secretVideo.mp4));
  const ctlClip = join(ctl, 'control.mp4');
  await writeFile(ctlClip, await readFile(ctlVideo.mp4));
  await writeHostileRoot(root, secret, priv);
  const evil = await startEvilHost(secret);
  const clips = await renderClips(dir, secret);

  const [proto, media, paths, patterns] = await Promise.all([
    createServer({ port: 0, engine, token, limits: PROTO_LIMITS }),
    createServer({ port: 0, engine, token, limits: MEDIA_LIMITS }),
    createServer({ port: 0, engine, token, allowPaths: [root, ctl], allowUrlSchemes: ['http', 'rtsp'], limits: PROTO_LIMITS }),
    createServer({ port: 0, engine, token, limits: PATTERN_LIMITS }),
  ]);
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  return {
    engine,
    token,
    dir,
    proto,
    media,
    paths,
    patterns,
    root,
    ctlClip,
    secret,
    evilBase: evil.base,
    clips,
    eld,
    stats: new Map(),
    patience: options.patience ?? 1,
    async close() {
      eld.disable();
      await Promise.all([proto.close(), media.close(), paths.close(), patterns.close()]);
      await evil.close();
      await cleanup();
    },
  };
}
