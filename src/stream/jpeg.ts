// A `jpeg` input takes JPEG and nothing else. The client's word is not trusted: libvips picks its
// loader from the bytes, so PNG, GIF, WebP, TIFF or SVG (an XML renderer) sent as "jpeg" would be
// decoded. The magic number is checked before libvips sees the buffer, the header's format and
// size before any pixel is decoded.
import sharp, { type Metadata, type Sharp } from 'sharp';
import { WinnowError } from '../errors.js';

/** Every JPEG starts with SOI (FF D8) followed by a marker (FF). */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

const SIGNATURES: readonly [string, (b: Uint8Array) => boolean][] = [
  ['png', (b) => b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47],
  ['gif', (b) => b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46],
  ['webp', (b) => b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45],
  ['tiff', (b) => (b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 0x2a)],
  ['bmp', (b) => b[0] === 0x42 && b[1] === 0x4d],
];

/** A short name for what the bytes look like, for the error's details (never used to decide). */
function sniff(bytes: Uint8Array): string {
  for (const [name, test] of SIGNATURES) if (bytes.length >= 12 && test(bytes)) return name;
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<?xml') || head.startsWith('<svg')) return 'svg';
  return 'unknown';
}

/**
 * A sharp pipeline over `bytes` once they are known to be a JPEG of at most `maxPixels` pixels:
 * WINNOW_ERR_CORRUPT_INPUT (`details.reason` 'not-jpeg' or 'header') or WINNOW_ERR_LIMIT_EXCEEDED
 * (`details.limit` 'maxInputPixels') otherwise.
 */
export async function decodeJpeg(bytes: Uint8Array, maxPixels: number, ptsMs: number): Promise<Sharp> {
  if (!isJpeg(bytes)) {
    throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `the image at ${ptsMs} ms is not a JPEG (a jpeg input takes JPEG only)`, {
      details: { ptsMs, reason: 'not-jpeg', detected: sniff(bytes) },
    });
  }
  let meta: Metadata;
  try {
    // The header alone (no pixel is decoded), read without sharp's own limit so that an over-size
    // image is reported as a limit, with its size, rather than as a corrupt file.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `cannot read the JPEG header at ${ptsMs} ms: ${(e as Error).message}`, { cause: e, details: { ptsMs, reason: 'header' } });
  }
  if (meta.format !== 'jpeg') {
    throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `the image at ${ptsMs} ms is not a JPEG`, { details: { ptsMs, reason: 'not-jpeg', detected: String(meta.format) } });
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) {
    throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `the JPEG at ${ptsMs} ms is ${meta.width}×${meta.height}; the limit maxInputPixels is ${maxPixels}`, {
      details: { ptsMs, limit: 'maxInputPixels', value: pixels, max: maxPixels },
    });
  }
  return sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' });
}
