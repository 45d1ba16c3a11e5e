// A deliberately tiny, SAFE unpickler: it understands the opcodes torch.save emits (protocol 2)
// for a tensor or a dict of tensors, and nothing else. It never imports or calls anything: the
// only GLOBALs accepted are an allow-list of names that map to inert tagged values, and REDUCE
// is only honoured for the two allow-listed callables. Any other opcode or global raises
// WINNOW_ERR_UNSAFE_PICKLE, so a hostile .pt cannot run code here.
import { WinnowError } from '../errors.js';

export type TorchStorageDtype = 'float16' | 'float32' | 'bfloat16';

export interface PickledGlobal {
  kind: 'global';
  module: string;
  name: string;
}

export interface PickledStorage {
  kind: 'storage';
  dtype: TorchStorageDtype;
  /** Name of the storage file under `data/` in the zip archive. */
  key: string;
  /** Device the storage was saved from, e.g. `cuda:0`; irrelevant on load. */
  location: string;
  /** Elements in the storage. */
  numel: number;
}

export interface PickledTensor {
  kind: 'tensor';
  storage: PickledStorage;
  storageOffset: number;
  size: number[];
  stride: number[];
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | PickledGlobal
  | PickledStorage
  | PickledTensor;

const STORAGE_DTYPES: Record<string, TorchStorageDtype> = {
  HalfStorage: 'float16',
  FloatStorage: 'float32',
  BFloat16Storage: 'bfloat16',
};

const ALLOWED_GLOBALS = new Set([
  'torch._utils._rebuild_tensor_v2',
  'collections.OrderedDict',
  'torch.HalfStorage',
  'torch.FloatStorage',
  'torch.BFloat16Storage',
]);

function unsafe(message: string, details: Record<string, unknown> = {}): WinnowError {
  return new WinnowError('WINNOW_ERR_UNSAFE_PICKLE', message, { details });
}

function isGlobal(v: PickleValue, qualified: string): v is PickledGlobal {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.kind === 'global' && `${v.module}.${v.name}` === qualified;
}

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

export interface UnpickleOptions {
  /** Upper bound on stack depth + memo entries; a defence against crafted inputs. Default 100 000. */
  maxItems?: number;
}

export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): PickleValue {
  const maxItems = options.maxItems ?? 100_000;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PickleValue>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;

  const need = (n: number): void => {
    if (pos + n > bytes.byteLength) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: truncated data');
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 256) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: bad GLOBAL line');
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: stack underflow');
    return v;
  };
  const popMark = (): PickleValue[] => {
    const idx = stack.lastIndexOf(MARK);
    if (idx < 0) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: MARK not found');
    const items = stack.splice(idx) as PickleValue[];
    items.shift();
    return items;
  };
  const push = (v: PickleValue | typeof MARK): void => {
    if (stack.length + memo.size >= maxItems) throw unsafe('pickle: too many items');
    stack.push(v);
  };
  const str = (n: number): string => {
    need(n);
    const s = utf8.decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };

  for (;;) {
    need(1);
    const op = bytes[pos++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (bytes[pos] > 5) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `pickle: protocol ${bytes[pos]} not supported`);
        pos += 1;
        break;
      case 0x95: // FRAME (protocol 4): length prefix only
        need(8);
        pos += 8;
        break;
      case 0x63: { // GLOBAL 'module\nname\n'
        const module = readLine();
        const name = readLine();
        const q = `${module}.${name}`;
        if (!ALLOWED_GLOBALS.has(q)) throw unsafe(`pickle: global ${q} is not on the allow-list`, { global: q });
        push({ kind: 'global', module, name });
        break;
      }
      case 0x71: // BINPUT
        need(1);
        if (stack.length === 0) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: BINPUT on empty stack');
        memo.set(bytes[pos++], stack[stack.length - 1] as PickleValue);
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(dv.getUint32(pos, true), stack[stack.length - 1] as PickleValue);
        pos += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack[stack.length - 1] as PickleValue);
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        let key: number;
        if (op === 0x68) {
          need(1);
          key = bytes[pos++];
        } else {
          need(4);
          key = dv.getUint32(pos, true);
          pos += 4;
        }
        if (!memo.has(key)) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `pickle: memo key ${key} missing`);
        push(memo.get(key) as PickleValue);
        break;
      }
      case 0x28: // MARK
        push(MARK);
        break;
      case 0x58: { // BINUNICODE
        need(4);
        const n = dv.getUint32(pos, true);
        pos += 4;
        push(str(n));
        break;
      }
      case 0x8c: { // SHORT_BINUNICODE
        need(1);
        const n = bytes[pos++];
        push(str(n));
        break;
      }
      case 0x4a: // BININT
        need(4);
        push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        push(bytes[pos++]);
        break;
      case 0x4d: // BININT2
        need(2);
        push(dv.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: { // LONG1: little-endian two's complement
        need(1);
        const n = bytes[pos++];
        if (n > 8) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: integer too large');
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x29: // EMPTY_TUPLE
        push([]);
        break;
      case 0x74: // TUPLE
        push(popMark());
        break;
      case 0x85: // TUPLE1
        push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push([a, b, c]);
        break;
      }
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x61: { // APPEND
        const v = pop();
        const list = pop();
        if (!Array.isArray(list)) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: APPEND to a non-list');
        list.push(v);
        push(list);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = pop();
        if (!Array.isArray(list)) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: APPENDS to a non-list');
        list.push(...items);
        push(list);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        const d = pop();
        if (!(d instanceof Map)) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: SETITEM on a non-dict');
        d.set(k, v);
        push(d);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        const d = pop();
        if (!(d instanceof Map) || items.length % 2 !== 0) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: bad SETITEMS');
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        push(d);
        break;
      }
      case 0x51: { // BINPERSID
        push(persistentLoad(pop()));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        push(reduce(fn, args));
        break;
      }
      case 0x2e: { // STOP
        const v = pop();
        return v;
      }
      default:
        // Everything else (INST, OBJ, NEWOBJ, BUILD, STACK_GLOBAL, EXT*, ...) could construct or
        // call arbitrary objects: refuse rather than interpret.
        throw unsafe(`pickle: opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1} is not allowed`, { opcode: op, offset: pos - 1 });
    }
  }
}

function persistentLoad(pid: PickleValue): PickledStorage {
  if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw unsafe('pickle: persistent id is not a torch storage reference');
  const [, type, key, location, numel] = pid;
  if (typeof type !== 'object' || type === null || Array.isArray(type) || type instanceof Map || type.kind !== 'global' || type.module !== 'torch') {
    throw unsafe('pickle: storage type is not a torch storage class');
  }
  const dtype = STORAGE_DTYPES[type.name];
  if (!dtype) throw unsafe(`pickle: storage type torch.${type.name} not supported`);
  if (typeof key !== 'string' || !/^[A-Za-z0-9_]+$/.test(key)) throw unsafe('pickle: storage key must be a plain name');
  if (typeof location !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: malformed storage reference');
  }
  return { kind: 'storage', dtype, key, location, numel };
}

function intTuple(v: PickleValue): number[] | undefined {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) return undefined;
  return v as number[];
}

function reduce(fn: PickleValue, args: PickleValue): PickleValue {
  if (!Array.isArray(args)) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: REDUCE arguments are not a tuple');
  if (isGlobal(fn, 'collections.OrderedDict')) {
    if (args.length !== 0) throw unsafe('pickle: OrderedDict with arguments is not allowed');
    return new Map();
  }
  if (isGlobal(fn, 'torch._utils._rebuild_tensor_v2')) {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    const [storage, offset, size, stride] = args;
    const sizeT = intTuple(size);
    const strideT = intTuple(stride);
    if (
      typeof storage !== 'object' || storage === null || Array.isArray(storage) || storage instanceof Map || storage.kind !== 'storage' ||
      typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || !sizeT || !strideT || sizeT.length !== strideT.length
    ) {
      throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'pickle: malformed _rebuild_tensor_v2 arguments');
    }
    return { kind: 'tensor', storage, storageOffset: offset, size: sizeT, stride: strideT };
  }
  throw unsafe('pickle: REDUCE of a callable that is not on the allow-list');
}
