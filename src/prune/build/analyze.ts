// `--analyze`: per image, the picture the paper explains itself with: the frame as the model
// sees it, a heat map of the single-input top probability and one of the weighted leave-one-out
// JSD over the token grid, with the low-information tokens marked and the tokens selected as
// redundancy candidates outlined.
import sharp from 'sharp';
import type { Frame } from '../../ingest/index.js';
import type { ImageRecord } from './workdir.js';
import { weightedJsd, type SelectionOptions } from './select.js';

const CELL_PX = 16;
const GAP_PX = 8;
const CAPTION_PX = 40;

// Viridis at 5 stops (linear interpolation between them is close enough for a heat map).
const STOPS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

function colour(t: number, out: Uint8Array, o: number): void {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  for (let c = 0; c < 3; c++) out[o + c] = Math.round(STOPS[i][c] * (1 - f) + STOPS[i + 1][c] * f);
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** PNG of one image's analysis (frame | top probability | weighted JSD). */
export async function renderAnalysis(frame: Frame, rec: ImageRecord, marks: { lowInfo: readonly number[]; selected: readonly number[] }, p: SelectionOptions): Promise<Buffer> {
  const { gridH, gridW } = rec;
  const pw = gridW * CELL_PX;
  const ph = gridH * CELL_PX;
  const width = 3 * pw + 4 * GAP_PX;
  const height = ph + 2 * GAP_PX + CAPTION_PX;
  const img = new Uint8Array(width * height * 3).fill(24);
  const put = (x: number, y: number, r: number, g: number, b: number): void => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const o = (y * width + x) * 3;
    img[o] = r;
    img[o + 1] = g;
    img[o + 2] = b;
  };
  // Panel 1: the model-input frame, nearest-neighbour scaled onto the grid area.
  const x0 = GAP_PX;
  for (let y = 0; y < ph; y++) {
    const sy = Math.min(frame.height - 1, Math.floor((y * frame.height) / ph));
    for (let x = 0; x < pw; x++) {
      const sx = Math.min(frame.width - 1, Math.floor((x * frame.width) / pw));
      const s = (sy * frame.width + sx) * 3;
      put(x0 + x, GAP_PX + y, frame.data[s], frame.data[s + 1], frame.data[s + 2]);
    }
  }
  // Panels 2-3: heat maps. Top probability on [0, 1]; weighted JSD on a log scale spanning two
  // decades either side of τ_jsd, so the threshold sits mid-scale and images compare.
  const lo = Math.log10(p.tauJsd) - 2;
  const span = 4;
  const cell = new Uint8Array(3);
  const x1 = 2 * GAP_PX + pw;
  const x2 = 3 * GAP_PX + 2 * pw;
  const low = new Set(marks.lowInfo);
  const sel = new Set(marks.selected);
  for (let i = 0; i < gridH * gridW; i++) {
    const gy = Math.floor(i / gridW);
    const gx = i % gridW;
    for (const [px, t] of [
      [x1, rec.topProb[i]],
      [x2, (Math.log10(Math.max(1e-12, weightedJsd(rec.jsdCtx[i], rec.jsdGlob[i], p))) - lo) / span],
    ] as const) {
      colour(t, cell, 0);
      for (let y = 0; y < CELL_PX; y++) for (let x = 0; x < CELL_PX; x++) put(px + gx * CELL_PX + x, GAP_PX + gy * CELL_PX + y, cell[0], cell[1], cell[2]);
    }
  }
  // Marks on all three panels: a dot for low-information tokens, a white outline for selected ones.
  for (let i = 0; i < gridH * gridW; i++) {
    const gy = Math.floor(i / gridW);
    const gx = i % gridW;
    for (const px of [x0, x1, x2]) {
      const cx = px + gx * CELL_PX;
      const cy = GAP_PX + gy * CELL_PX;
      if (low.has(i)) for (let y = 6; y < 10; y++) for (let x = 6; x < 10; x++) put(cx + x, cy + y, 255, 64, 160);
      if (sel.has(i)) {
        for (let k = 0; k < CELL_PX; k++) {
          for (const w of [0, 1]) {
            put(cx + k, cy + w, 255, 255, 255);
            put(cx + k, cy + CELL_PX - 1 - w, 255, 255, 255);
            put(cx + w, cy + k, 255, 255, 255);
            put(cx + CELL_PX - 1 - w, cy + k, 255, 255, 255);
          }
        }
      }
    }
  }
  const ty = ph + 2 * GAP_PX + 14;
  const caption = [
    `<text x="${x0}" y="${ty}">${escapeXml(rec.id)}</text>`,
    `<text x="${x0}" y="${ty + 16}">${marks.lowInfo.length} low-info (dot), ${marks.selected.length} selected (box)</text>`,
    `<text x="${x1}" y="${ty}">single-input top prob, 0 → 1</text>`,
    `<text x="${x1}" y="${ty + 16}">τp = ${p.tauP}</text>`,
    `<text x="${x2}" y="${ty}">${p.kCtx}·JSDctx + ${p.kGlob}·JSDglob, log10</text>`,
    `<text x="${x2}" y="${ty + 16}">${lo.toFixed(1)} → ${(lo + span).toFixed(1)} (τ mid-scale)</text>`,
  ].join('');
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="sans-serif" font-size="12" fill="#e8e8e8">${caption}</g></svg>`,
  );
  return sharp(Buffer.from(img.buffer, img.byteOffset, img.byteLength), { raw: { width, height, channels: 3 } })
    .composite([{ input: svg, top: 0, left: 0 }])
    .png()
    .toBuffer();
}
