// Reader/writer for numpy's .npy format (v1/v2/v3 headers), limited to what `winnow prune`
// needs: 2-D float16/float32, little-endian, C order.
import { WinnowError } from '../errors.js';
import { decodeF16, decodeF32, encodeF16, encodeF32 } from './float16.js';

export interface NpyMatrix {
  dtype: '<f2' | '<f4';
  rows: number;
  cols: number;
  /** Decoded row-major values. */
  data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** numpy itself refuses headers above 10 kB unless told otherwise. */
const MAX_NPY_HEADER_BYTES = 64 * 1024;

function bad(message: string, source?: string): WinnowError {
  return new WinnowError('WINNOW_ERR_CORRUPT_INPUT', message, { details: source ? { path: source } : {} });
}

export function readNpy(bytes: Uint8Array, source?: string): NpyMatrix {
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad('npy: missing \\x93NUMPY magic', source);
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw bad('npy: truncated header', source);
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw bad(`npy: unsupported format version ${major}`, source);
  }
  if (headerLen > MAX_NPY_HEADER_BYTES || headerStart + headerLen > bytes.byteLength) throw bad('npy: header length out of range', source);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad('npy: header lacks descr/fortran_order/shape', source);
  if (fortran === 'True') throw bad('npy: Fortran-order arrays are not supported (save with np.ascontiguousarray)', source);
  const dtype = descr === '<f2' || descr === 'float16' ? '<f2' : descr === '<f4' || descr === 'float32' ? '<f4' : undefined;
  if (!dtype) throw bad(`npy: dtype ${descr} not supported (need little-endian float16 or float32)`, source);
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (dims.length !== 2 || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`npy: need a 2-D array [L, D], got shape (${shapeText})`, source);
  const [rows, cols] = dims as [number, number];
  const dataStart = headerStart + headerLen;
  const itemBytes = dtype === '<f2' ? 2 : 4;
  const need = rows * cols * itemBytes;
  if (bytes.byteLength - dataStart < need) throw bad(`npy: data section has ${bytes.byteLength - dataStart} bytes, shape needs ${need}`, source);
  const data = dtype === '<f2' ? decodeF16(bytes, dataStart, rows * cols) : decodeF32(bytes, dataStart, rows * cols);
  return { dtype, rows, cols, data };
}

export function writeNpy(data: ArrayLike<number>, rows: number, cols: number, dtype: '<f2' | '<f4' = '<f4'): Uint8Array {
  if (data.length !== rows * cols) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'npy: data length does not match shape');
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  // numpy pads so that magic + len + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const raw = dtype === '<f2' ? encodeF16(data) : encodeF32(data);
  const out = new Uint8Array(10 + header.length + raw.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(raw, 10 + header.length);
  return out;
}
