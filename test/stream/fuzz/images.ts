// Images for the jpeg input: an arbitrary over JPEGs of every encoding, JPEG headers that claim a huge
// picture, other image formats, JPEG magic followed by garbage and random bytes, and the bytes of each.
import fc from 'fast-check';
import sharp from 'sharp';

export type Image =
  | { kind: 'jpeg'; width: number; height: number; quality: number; progressive: boolean; chroma: '4:2:0' | '4:4:4'; cmyk: boolean }
  | { kind: 'jpeg-header-bomb'; width: number; height: number }
  | { kind: 'png' | 'gif' | 'webp' | 'tiff' | 'bmp' | 'svg'; tail: number[] }
  | { kind: 'random'; bytes: number[] }
  | { kind: 'jpeg-magic-garbage'; bytes: number[] }
  /** A JPEG sent without its input_video.frame. */
  | { kind: 'no-frame' };

const byteArray = (maxLength: number): fc.Arbitrary<number[]> => fc.array(fc.integer({ min: 0, max: 255 }), { maxLength });

export const imageArb: fc.Arbitrary<Image> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('jpeg' as const),
      width: fc.integer({ min: 1, max: 128 }),
      height: fc.integer({ min: 1, max: 128 }),
      quality: fc.integer({ min: 1, max: 100 }),
      progressive: fc.boolean(),
      chroma: fc.constantFrom('4:2:0' as const, '4:4:4' as const),
      cmyk: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('jpeg-header-bomb' as const), width: fc.integer({ min: 65, max: 65_500 }), height: fc.integer({ min: 65, max: 65_500 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('png' as const, 'gif' as const, 'webp' as const, 'tiff' as const, 'bmp' as const, 'svg' as const), tail: byteArray(16) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: byteArray(600) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('jpeg-magic-garbage' as const), bytes: byteArray(300) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'no-frame' as const }) },
);

export const isJpegMagic = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** A BMP (sharp does not write them): 2×2, 24-bit. */
function bmp(): Buffer {
  const row = 8; // 2 px × 3 bytes, padded to 4
  const data = Buffer.alloc(row * 2, 0x7f);
  const h = Buffer.alloc(54);
  h.write('BM', 0, 'latin1');
  h.writeUInt32LE(54 + data.length, 2);
  h.writeUInt32LE(54, 10);
  h.writeUInt32LE(40, 14);
  h.writeInt32LE(2, 18);
  h.writeInt32LE(2, 22);
  h.writeUInt16LE(1, 26);
  h.writeUInt16LE(24, 28);
  h.writeUInt32LE(data.length, 34);
  return Buffer.concat([h, data]);
}

/** Rewrites the frame size of a JPEG's SOF marker: a tiny file that claims a huge picture. */
function patchSof(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length; ) {
    if (out[i] !== 0xff) break;
    const marker = out[i + 1];
    const len = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker');
}

export async function imageBytes(img: Exclude<Image, { kind: 'no-frame' }>): Promise<Buffer> {
  const solid = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 40, g: 160, b: 90 } } });
  switch (img.kind) {
    case 'jpeg': {
      const p = solid(img.width, img.height);
      return (img.cmyk ? p.toColourspace('cmyk') : p).jpeg({ quality: img.quality, progressive: img.progressive, chromaSubsampling: img.chroma }).toBuffer();
    }
    case 'jpeg-header-bomb':
      return patchSof(await solid(16, 16).jpeg().toBuffer(), img.width, img.height);
    case 'png':
    case 'gif':
    case 'webp':
    case 'tiff':
      return Buffer.concat([await solid(12, 10).toFormat(img.kind).toBuffer(), Buffer.from(img.tail)]);
    case 'bmp':
      return Buffer.concat([bmp(), Buffer.from(img.tail)]);
    case 'svg':
      return Buffer.from(`${img.tail.length % 2 ? '<?xml version="1.0"?>\n' : '  '}<svg xmlns="http://www.w3.org/2000/svg" width="${8 + img.tail.length}" height="8"><rect width="8" height="8" fill="red"/></svg>`);
    case 'random':
      return Buffer.from(img.bytes);
    case 'jpeg-magic-garbage':
      return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.from(img.bytes)]);
  }
}
