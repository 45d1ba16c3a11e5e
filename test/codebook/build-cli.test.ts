// `winnow codebook build` end to end on three rendered stills: codebook + metadata, heat maps,
// a SIGKILL mid-run followed by a rerun giving the byte-identical codebook, re-selection from the
// work dir with other constants, and the no-prototype error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadCodebook } from '../../src/prune/codebook.js';
import { sha256File } from '../../src/prune/build/index.js';
import { CLI_ENTRY, MODEL_DIR, fileTempDir, runCli, spawnTsx, waitUntil } from '../shared/index.js';
import { renderStills } from './helpers.js';

const tmp = fileTempDir('winnow-cb-cli-');
let imgs: string;
let removeImages: (() => Promise<void>) | undefined;
// Selection constants that pass every token on any model (the experiments and clustering still
// run in full), and a small global clustering, so three images always yield prototypes.
const COMMON = ['--tau-p', '1.01', '--tau-jsd', '1e9', '--cluster-size', '196', '--global-clusters', '4', '--min-images', '0', '--seed', '3', '--json', '--no-progress'];

const cli = (args: string[]) => runCli(['codebook', 'build', ...args]);

before(async () => {
  ({ dir: imgs, cleanup: removeImages } = await renderStills(3));
});

after(() => removeImages?.());

test('builds a codebook with its metadata and heat maps', async () => {
  const out = join(tmp.dir, 'a.safetensors');
  const an = join(tmp.dir, 'analysis');
  const r = cli(['--images', imgs, '--out', out, '--analyze', an, ...COMMON]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { prototypes: number; images: number; tokens: number; distributions: { topProb: Record<string, number> } };
  assert.equal(res.images, 3);
  assert.equal(res.tokens, 3 * 196);
  assert.ok(res.prototypes > 0);
  const cb = await loadCodebook(out);
  assert.equal(cb.count, res.prototypes);
  assert.equal(cb.dim, 128);
  assert.equal(cb.model?.visionEncoderSha256, await sha256File(join(MODEL_DIR, 'onnx', 'vision_encoder.onnx')));
  assert.equal(cb.defaults?.strategy, 'threshold');
  assert.equal(cb.build?.imageCount, 3);
  assert.equal(cb.build?.sampleIds?.length, cb.count);
  for (const id of cb.build?.sampleIds ?? []) assert.match(id, /^still_0000[0-2]\.png$/);
  const p = cb.build?.parameters ?? {};
  for (const k of ['singleRepeat', 'singleTopK', 'jsdTopK', 'window', 'kCtx', 'kGlob', 'tauJsd', 'tauP', 'imageClusters', 'clusterSizeThreshold', 'globalClusters', 'minDistinctImages', 'knn', 'seed', 'prompt', 'padTokenId', 'frameMarker']) {
    assert.ok(k in p, `parameter ${k} recorded`);
  }
  assert.equal(p.globalClusters, 4);
  assert.equal(p.tauP, 1.01);
  assert.equal(p.kGlob, 16);
  const pngs = readdirSync(an).filter((f) => f.endsWith('.png'));
  assert.equal(pngs.length, 3);
  const meta = await sharp(join(an, pngs[0])).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 3 * 14 * 16);
});

test('killed mid-run with SIGKILL, the rerun continues and writes the same codebook', async () => {
  const out = join(tmp.dir, 'b.safetensors');
  const work = join(tmp.dir, 'b.work');
  const child = spawnTsx(CLI_ENTRY, ['codebook', 'build', '--images', imgs, '--out', out, '--work', work, ...COMMON], { stdio: 'ignore' });
  const lines = join(work, 'images.jsonl');
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  // Kill once the first image is checkpointed (and before the last one is).
  const checkpointed = (): number => (existsSync(lines) ? readFileSync(lines, 'utf8').split('\n').filter(Boolean).length : 0);
  await waitUntil(() => checkpointed() >= 1, 60_000, 25);
  child.kill('SIGKILL');
  await exited;
  assert.equal(existsSync(out), false, 'the killed run must not have finished');
  const r = cli(['--images', imgs, '--out', out, '--work', work, ...COMMON]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { imagesResumed: number; images: number };
  assert.ok(res.imagesResumed >= 1 && res.imagesResumed < 3, `resumed ${res.imagesResumed}`);
  assert.equal(res.images, 3);
  assert.deepEqual(readFileSync(out), readFileSync(join(tmp.dir, 'a.safetensors')));
});

test('other selection constants reuse the work dir; none found is WINNOW_ERR_NO_PROTOTYPES', () => {
  const work = join(tmp.dir, 'b.work');
  const t0 = Date.now();
  const r = cli(['--images', imgs, '--out', join(tmp.dir, 'c.safetensors'), '--work', work, ...COMMON, '--min-images', '5', '--select-only']);
  assert.equal(r.code, 1);
  const err = JSON.parse(r.stderr.trim().split('\n').pop() as string) as { error: { code: string; details: { result: { distributions: unknown; images: number } } } };
  assert.equal(err.error.code, 'WINNOW_ERR_NO_PROTOTYPES');
  assert.equal(err.error.details.result.images, 3);
  assert.ok(err.error.details.result.distributions);
  assert.equal(existsSync(join(tmp.dir, 'c.safetensors')), false);
  // No LLM work was redone: well under the time of one image's experiments.
  assert.ok(Date.now() - t0 < 60_000);
  // Select-only re-selection with the original constants reproduces the codebook.
  const again = cli(['--images', imgs, '--out', join(tmp.dir, 'e.safetensors'), '--work', work, ...COMMON, '--select-only']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(readFileSync(join(tmp.dir, 'e.safetensors')), readFileSync(join(tmp.dir, 'a.safetensors')));
  // An experiment constant cannot change on the same work dir.
  const bad = cli(['--images', imgs, '--out', join(tmp.dir, 'd.safetensors'), '--work', work, ...COMMON, '--jsd-top-k', '5']);
  assert.equal(bad.code, 1);
  assert.equal((JSON.parse(bad.stderr.trim().split('\n').pop() as string) as { error: { code: string } }).error.code, 'WINNOW_ERR_INVALID_ARGUMENT');
});
