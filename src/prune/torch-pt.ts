// Reads one tensor out of a PyTorch zip checkpoint (torch.save, format since torch 1.6):
// `<archive>/data.pkl` (pickle, see ./pickle.ts) + `<archive>/data/<key>` (raw storage bytes)
// + optional `<archive>/byteorder`. The legacy tar/pickle-stream format is refused.
import { unzipSync } from 'fflate';
import { WinnowError } from '../errors.js';
import { decodeBF16, decodeF16, decodeF32 } from './float16.js';
import { unpickle, type PickleValue, type PickledTensor, type TorchStorageDtype } from './pickle.js';

export interface TorchTensor {
  dtype: TorchStorageDtype;
  shape: number[];
  data: Float32Array;
  /** Dict key the tensor was stored under, when the file held a one-entry dict. */
  key?: string;
}

export interface ReadTorchOptions {
  /** Refuse archives whose entries together would unpack to more than this. Default 1 GiB. */
  maxUncompressedBytes?: number;
  source?: string;
}

const ITEM_BYTES: Record<TorchStorageDtype, number> = { float16: 2, float32: 4, bfloat16: 2 };

function fmt(message: string, source?: string, cause?: unknown): WinnowError {
  return new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', message, { cause, details: source ? { path: source } : {} });
}

function isTensor(v: PickleValue): v is PickledTensor {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.kind === 'tensor';
}

export function readTorchTensor(bytes: Uint8Array, options: ReadTorchOptions = {}): TorchTensor {
  const src = options.source;
  const maxBytes = options.maxUncompressedBytes ?? 1024 ** 3;
  if (bytes.byteLength < 4 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) {
    throw fmt('not a PyTorch zip checkpoint (legacy non-zip torch.save files are not supported; re-save with torch>=1.6)', src);
  }
  let total = 0;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        total += f.originalSize;
        if (total > maxBytes) throw fmt(`archive unpacks to more than ${maxBytes} bytes`, src);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof WinnowError) throw e;
    throw fmt('corrupt zip archive', src, e);
  }
  const pklName = Object.keys(files).find((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName) throw fmt('archive has no data.pkl', src);
  const prefix = pklName.slice(0, pklName.length - 'data.pkl'.length);
  const byteorder = files[`${prefix}byteorder`];
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== 'little') throw fmt('big-endian checkpoints are not supported', src);

  const root = unpickle(files[pklName]);
  let tensor: PickledTensor;
  let key: string | undefined;
  if (isTensor(root)) tensor = root;
  else if (root instanceof Map) {
    const entries = [...root.entries()].filter(([, v]) => isTensor(v));
    if (entries.length !== 1 || root.size !== 1) throw fmt(`expected one tensor, found a dict with ${root.size} entries`, src);
    key = String(entries[0][0]);
    tensor = entries[0][1] as PickledTensor;
  } else throw fmt('pickle does not hold a tensor', src);

  const { storage, storageOffset, size, stride } = tensor;
  const raw = files[`${prefix}data/${storage.key}`];
  if (!raw) throw fmt(`storage file data/${storage.key} missing from the archive`, src);
  const item = ITEM_BYTES[storage.dtype];
  if (raw.byteLength !== storage.numel * item) throw fmt(`storage data/${storage.key} has ${raw.byteLength} bytes, expected ${storage.numel} × ${item}`, src);
  const numel = size.reduce((a, b) => a * b, 1);
  if (size.some((d) => d < 0)) throw fmt('negative tensor size', src);
  // Only contiguous (row-major) layouts are accepted; a dimension of size 1 may carry any stride.
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) throw fmt(`non-contiguous tensor (size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)}); save tensor.contiguous()`, src);
    expected *= size[d];
  }
  if (storageOffset + numel > storage.numel) throw fmt('tensor extends past the end of its storage', src);
  const byteOffset = storageOffset * item;
  const data =
    storage.dtype === 'float16' ? decodeF16(raw, byteOffset, numel) : storage.dtype === 'bfloat16' ? decodeBF16(raw, byteOffset, numel) : decodeF32(raw, byteOffset, numel);
  return { dtype: storage.dtype, shape: [...size], data, key };
}
