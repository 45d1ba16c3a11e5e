// IEEE 754 half precision and bfloat16 <-> float32 conversions. Written out by hand because
// Node 20 has no Float16Array; both directions are exact where the target can represent the
// value (f16 -> f32 always is), and f32 -> f16 rounds to nearest-even like numpy/torch.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Decodes one binary16 bit pattern. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Encodes a number as binary16 with round-to-nearest-even (overflow -> ±Inf). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf / NaN (quiet)
  // Unbiased exponent re-biased for half.
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal in half (or underflows to zero).
    if (e < -10) return sign;
    mant |= 0x800000; // implicit leading 1
    const shift = 14 - e;
    const halfMant = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    let r = halfMant;
    if (rem > halfway || (rem === halfway && (halfMant & 1) === 1)) r += 1;
    return sign | r; // a carry into the exponent field is the correct result
  }
  let halfMant = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (halfMant & 1) === 1)) {
    halfMant += 1;
    if (halfMant === 0x400) {
      halfMant = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | halfMant;
}

/** bfloat16 is the top half of a float32. */
export function bf16BitsToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0];
}

/** Decodes `count` little-endian f16 values starting at byte `offset` of `bytes`. */
export function decodeF16(bytes: Uint8Array, offset: number, count: number, out = new Float32Array(count)): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 2);
  // A lookup table makes bulk decoding ~10x faster than per-value arithmetic.
  const table = f16Table();
  for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(i * 2, true)];
  return out;
}

export function decodeBF16(bytes: Uint8Array, offset: number, count: number, out = new Float32Array(count)): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 2);
  const outBits = new Uint32Array(out.buffer, out.byteOffset, count);
  for (let i = 0; i < count; i++) outBits[i] = dv.getUint16(i * 2, true) << 16;
  return out;
}

export function decodeF32(bytes: Uint8Array, offset: number, count: number, out = new Float32Array(count)): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
  for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/** Encodes float values as little-endian f16 bytes. */
export function encodeF16(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setUint16(i * 2, f32ToF16Bits(values[i]), true);
  return out;
}

export function encodeF32(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i], true);
  return out;
}

let table: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16BitsToF32(h);
  }
  return table;
}
