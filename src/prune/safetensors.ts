// A small reader/writer for the safetensors format: 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the raw little-endian tensor bytes. We only need F16/F32/BF16 here, and we validate
// everything a hostile or truncated file could get wrong before touching the data.
import { WinnowError } from '../errors.js';
import { decodeBF16, decodeF16, decodeF32, encodeF16, encodeF32 } from './float16.js';

export type SafetensorsDtype = 'F16' | 'F32' | 'BF16';

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Values decoded to float32, row-major. */
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

export interface SafetensorsReadOptions {
  /** Largest accepted JSON header. Default 16 MiB (the reference implementation's limit is 100 MB). */
  maxHeaderBytes?: number;
  /** Path or name used in error details. */
  source?: string;
}

export const DEFAULT_MAX_SAFETENSORS_HEADER_BYTES = 16 * 1024 * 1024;

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F16: 2, F32: 4, BF16: 2 };

function formatError(message: string, source: string | undefined, cause?: unknown): WinnowError {
  return new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', message, { cause, details: source ? { path: source } : {} });
}

export function readSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsFile {
  const maxHeader = options.maxHeaderBytes ?? DEFAULT_MAX_SAFETENSORS_HEADER_BYTES;
  const src = options.source;
  if (bytes.byteLength < 8) throw formatError('safetensors: file shorter than its 8-byte header length', src);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = dv.getBigUint64(0, true);
  if (headerLen > BigInt(maxHeader)) throw formatError(`safetensors: header of ${headerLen} bytes exceeds the ${maxHeader}-byte limit`, src);
  const hLen = Number(headerLen);
  if (8 + hLen > bytes.byteLength) throw formatError('safetensors: header runs past the end of the file', src);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hLen)));
  } catch (e) {
    throw formatError('safetensors: header is not valid UTF-8 JSON', src, e);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw formatError('safetensors: header is not a JSON object', src);
  const dataStart = 8 + hLen;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensor>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw formatError('safetensors: __metadata__ must be an object', src);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw formatError(`safetensors: __metadata__.${k} must be a string`, src);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null) throw formatError(`safetensors: entry ${name} is not an object`, src);
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== 'F16' && dtype !== 'F32' && dtype !== 'BF16') throw formatError(`safetensors: tensor ${name} has unsupported dtype ${String(dtype)}`, src);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw formatError(`safetensors: tensor ${name} has an invalid shape`, src);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw formatError(`safetensors: tensor ${name} has invalid data_offsets`, src);
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLen) throw formatError(`safetensors: tensor ${name} data_offsets [${begin}, ${end}] fall outside the ${dataLen}-byte data section`, src);
    if (end - begin !== numel * DTYPE_BYTES[dtype]) throw formatError(`safetensors: tensor ${name} byte length ${end - begin} does not match shape × dtype`, src);
    ranges.push([begin, end, name]);
    const count = numel;
    const data =
      dtype === 'F16' ? decodeF16(bytes, dataStart + begin, count) : dtype === 'BF16' ? decodeBF16(bytes, dataStart + begin, count) : decodeF32(bytes, dataStart + begin, count);
    tensors.set(name, { dtype, shape: [...(shape as number[])], data });
  }
  // The spec forbids overlapping tensors and holes; overlaps could alias data silently.
  ranges.sort((a, b) => a[0] - b[0]);
  let cursor = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== cursor) throw formatError(`safetensors: tensor ${name} data is not contiguous with the previous tensor`, src);
    cursor = end;
  }
  if (cursor !== dataLen) throw formatError(`safetensors: ${dataLen - cursor} trailing bytes after the last tensor`, src);
  return { tensors, metadata };
}

export interface SafetensorsWriteTensor {
  dtype: 'F16' | 'F32';
  shape: number[];
  data: ArrayLike<number>;
}

export function writeSafetensors(tensors: Record<string, SafetensorsWriteTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `tensor ${name}: shape does not match data length`);
    const raw = t.dtype === 'F16' ? encodeF16(t.data) : encodeF32(t.data);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + raw.byteLength] };
    offset += raw.byteLength;
    chunks.push(raw);
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
  const enc = new TextEncoder();
  let headerBytes = enc.encode(json);
  const pad = (8 - ((8 + headerBytes.byteLength) % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    headerBytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let p = 8 + headerBytes.byteLength;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  return out;
}
