// Pictures of pruning: a frame as the model sees it (same letterbox / crop as preprocessing, at a
// larger display scale), the token grid drawn over it, pruned tokens dimmed, and a caption.
// For videos, tiles of sampled frames on one contact sheet. Text goes through sharp's SVG
// renderer (librsvg), so no font handling here.
import sharp, { type OverlayOptions } from 'sharp';
import { WinnowError } from '../errors.js';
import type { PreprocessPlan } from './preprocessor-config.js';
import { geometricTransform, type RgbImage } from './preprocess.js';

export interface TokenOverlay {
  gridH: number;
  gridW: number;
  /** Original indices (raster order) of the kept tokens. */
  kept: ArrayLike<number>;
}

export interface RenderTileOptions {
  /** Display pixels per model-input pixel. Default: so that the longer side is about 448 px. */
  displayScale?: number;
  /** Caption lines under the picture. */
  caption?: readonly string[];
  /** Brightness factor of pruned cells, 0..1. Default 0.28. */
  dimFactor?: number;
}

const CAPTION_LINE_PX = 18;
const CAPTION_PAD_PX = 6;
const BACKGROUND = { r: 24, g: 24, b: 28 };

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** The plan with every output size multiplied by `k`: the same framing, at display resolution. */
function scaledPlan(plan: PreprocessPlan, k: number): PreprocessPlan {
  const resize = plan.resize
    ? plan.resize.kind === 'exact'
      ? { kind: 'exact' as const, height: plan.resize.height * k, width: plan.resize.width * k }
      : { kind: 'shortest-edge' as const, shortestEdge: plan.resize.shortestEdge * k }
    : null;
  return {
    ...plan,
    resize,
    kernel: 'cubic',
    centerCrop: plan.centerCrop ? { height: plan.centerCrop.height * k, width: plan.centerCrop.width * k } : null,
    outHeight: plan.outHeight * k,
    outWidth: plan.outWidth * k,
  };
}

export function defaultDisplayScale(plan: PreprocessPlan, targetPx = 448): number {
  return Math.max(1, Math.round(targetPx / Math.max(plan.outHeight, plan.outWidth)));
}

/**
 * Renders one frame with its token grid: kept cells as they are, pruned cells dimmed, grid
 * lines, optional caption. Returns packed RGB (for contact sheets) — see `encodePng`.
 */
export async function renderTokenTile(frame: RgbImage, plan: PreprocessPlan, overlay: TokenOverlay, options: RenderTileOptions = {}): Promise<RgbImage> {
  const { gridH, gridW } = overlay;
  if (!(gridH > 0 && gridW > 0)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `bad token grid ${gridH}×${gridW}`);
  const k = options.displayScale ?? defaultDisplayScale(plan);
  const shown = await geometricTransform(frame, scaledPlan(plan, k));
  const { width: W, height: H } = shown;
  const data = new Uint8Array(shown.data); // never write into the caller's frame
  const keep = new Uint8Array(gridH * gridW);
  for (let i = 0; i < overlay.kept.length; i++) {
    const t = overlay.kept[i];
    if (!(t >= 0 && t < keep.length)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `kept index ${t} outside the ${gridH}×${gridW} grid`);
    keep[t] = 1;
  }
  const dim = options.dimFactor ?? 0.28;
  // Cell edges in display pixels; grids that do not divide the image evenly get rounded edges.
  const xEdge = Array.from({ length: gridW + 1 }, (_, i) => Math.round((i * W) / gridW));
  const yEdge = Array.from({ length: gridH + 1 }, (_, i) => Math.round((i * H) / gridH));
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      if (keep[gy * gridW + gx]) continue;
      for (let y = yEdge[gy]; y < yEdge[gy + 1]; y++) {
        for (let x = xEdge[gx]; x < xEdge[gx + 1]; x++) {
          const i = (y * W + x) * 3;
          data[i] = data[i] * dim;
          data[i + 1] = data[i + 1] * dim;
          data[i + 2] = data[i + 2] * dim;
        }
      }
    }
  }
  const caption = options.caption ?? [];
  const captionH = caption.length ? caption.length * CAPTION_LINE_PX + 2 * CAPTION_PAD_PX : 0;
  const lines: string[] = [];
  for (let i = 1; i < gridW; i++) lines.push(`<line x1="${xEdge[i] + 0.5}" y1="0" x2="${xEdge[i] + 0.5}" y2="${H}"/>`);
  for (let i = 1; i < gridH; i++) lines.push(`<line x1="0" y1="${yEdge[i] + 0.5}" x2="${W}" y2="${yEdge[i] + 0.5}"/>`);
  const text = caption
    .map(
      (line, i) =>
        `<text x="${CAPTION_PAD_PX}" y="${H + CAPTION_PAD_PX + (i + 1) * CAPTION_LINE_PX - 5}" font-family="DejaVu Sans, sans-serif" font-size="13" fill="#f0f0f0">${escapeXml(line)}</text>`,
    )
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + captionH}">
<g stroke="#ffffff" stroke-opacity="0.35" stroke-width="1">${lines.join('')}</g>
<rect x="0.5" y="0.5" width="${W - 1}" height="${H - 1}" fill="none" stroke="#ffffff" stroke-opacity="0.5"/>${text}</svg>`;
  const { data: out, info } = await sharp(data, { raw: { width: W, height: H, channels: 3 } })
    .extend({ bottom: captionH, background: BACKGROUND })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength) };
}

/** Tiles in rows of `columns`, with a title line on top. */
export async function contactSheet(tiles: readonly RgbImage[], options: { columns?: number; title?: string; gapPx?: number } = {}): Promise<RgbImage> {
  if (!tiles.length) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'no frames to put on a contact sheet');
  const columns = Math.max(1, Math.min(options.columns ?? 4, tiles.length));
  const gap = options.gapPx ?? 8;
  const tileW = Math.max(...tiles.map((t) => t.width));
  const tileH = Math.max(...tiles.map((t) => t.height));
  const rows = Math.ceil(tiles.length / columns);
  const titleH = options.title ? 28 : 0;
  const W = columns * tileW + (columns + 1) * gap;
  const H = titleH + rows * tileH + (rows + 1) * gap;
  const layers: OverlayOptions[] = tiles.map((t, i) => ({
    input: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    raw: { width: t.width, height: t.height, channels: 3 },
    left: gap + (i % columns) * (tileW + gap),
    top: titleH + gap + Math.floor(i / columns) * (tileH + gap),
  }));
  if (options.title) {
    layers.push({
      input: Buffer.from(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${titleH}"><text x="${gap}" y="20" font-family="DejaVu Sans, sans-serif" font-size="15" font-weight="bold" fill="#ffffff">${escapeXml(options.title)}</text></svg>`,
      ),
      left: 0,
      top: 0,
    });
  }
  const { data, info } = await sharp({ create: { width: W, height: H, channels: 3, background: BACKGROUND } })
    .composite(layers)
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}
