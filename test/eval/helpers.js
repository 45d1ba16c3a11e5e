// Shared by the eval tests: a tiny rendered set and a codebook made from the default model's own
// tokens of a background-only frame (so threshold pruning has real similarities to work with
// whether or not the bundled codebook is installed).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { saveCodebook } from '../../src/prune/index.js';
import { renderBackground } from '../../src/synth/index.js';
export async function writeBackgroundPng(dir) {
    await mkdir(dir, { recursive: true });
    const w = 256;
    const h = 192;
    const bg = renderBackground({ name: 'teal', gradientAngleRad: 0.7, noiseSeed: 99 }, w, h);
    const path = join(dir, 'background.png');
    await sharp(Buffer.from(bg), { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
    return path;
}
/** Every 3rd token of a background-only frame (pad bars and background) as prototypes. */
export async function makeBackgroundCodebook(ev, dir) {
    const png = await writeBackgroundPng(dir);
    const enc = await ev.encodeScene({ part: 'stills', path: png, truthPath: '', name: 'background' });
    const f = enc.frames[0];
    const rows = [];
    for (let i = 0; i < f.numTokens; i += 3)
        rows.push(i);
    const protos = new Float32Array(rows.length * f.dim);
    rows.forEach((r, j) => protos.set(f.tokens.subarray(r * f.dim, (r + 1) * f.dim), j * f.dim));
    const path = join(dir, 'background-codebook.safetensors');
    await saveCodebook(path, { prototypes: protos, count: rows.length, dim: f.dim, dtype: 'F32', defaults: { strategy: 'threshold', tau: 0.9 }, extraMetadata: {} }, { dtype: 'F32' });
    return path;
}
//# sourceMappingURL=helpers.js.map