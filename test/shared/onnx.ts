// A tiny ONNX protobuf writer, enough to build test models (vision encoders with the exact I/O
// contract or a deliberately wrong one, small language models) without Python. Only the fields
// these tests use are encoded.
// Wire format: https://protobuf.dev/programming-guides/encoding/ ; schema: onnx/onnx.proto.

type Field = Uint8Array;

function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const enc = new TextEncoder();
const fVarint = (num: number, v: number | bigint): Field => Uint8Array.from([...varint((num << 3) | 0), ...varint(v)]);
const fBytes = (num: number, b: Uint8Array): Field => concat([Uint8Array.from([...varint((num << 3) | 2), ...varint(b.length)]), b]);
const fString = (num: number, s: string): Field => fBytes(num, enc.encode(s));
const fMsg = (num: number, parts: readonly Field[]): Field => fBytes(num, concat(parts));

export type Dim = number | string;
export type ElemType = 'float32' | 'int64' | 'float16';
const ELEM: Record<ElemType, number> = { float32: 1, int64: 7, float16: 10 };

export interface ValueInfo {
  name: string;
  type: ElemType;
  shape: readonly Dim[];
}

export interface Initializer {
  name: string;
  dims: readonly number[];
  data: Float32Array | BigInt64Array;
  /** Store the data in a file beside the model (ONNX external data) instead of inside it. */
  external?: { location: string; offset: number };
}

export type AttrValue = number | readonly number[] | string | { float: number };

export interface Node {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, AttrValue>;
}

function valueInfo(v: ValueInfo): Field[] {
  const dims = v.shape.map((d) => fMsg(1, [typeof d === 'number' ? fVarint(1, d) : fString(2, d)]));
  const tensorType = fMsg(1, [fVarint(1, ELEM[v.type]), fMsg(2, dims)]);
  return [fString(1, v.name), fMsg(2, [tensorType])];
}

function attribute(name: string, v: AttrValue): Field[] {
  if (typeof v === 'string') return [fString(1, name), fBytes(4, enc.encode(v)), fVarint(20, 3)];
  if (typeof v === 'number') return [fString(1, name), fVarint(3, v), fVarint(20, 2)];
  if (Array.isArray(v)) return [fString(1, name), ...v.map((x) => fVarint(8, x)), fVarint(20, 7)];
  const buf = new Uint8Array(4);
  new DataView(buf.buffer).setFloat32(0, (v as { float: number }).float, true);
  return [fString(1, name), concat([Uint8Array.from(varint((2 << 3) | 5)), buf]), fVarint(20, 1)];
}

function tensor(t: Initializer): Field[] {
  const isF = t.data instanceof Float32Array;
  const head = [...t.dims.map((d) => fVarint(1, d)), fVarint(2, isF ? 1 : 7), fString(8, t.name)];
  if (t.external) {
    // external_data (13): location / offset / length entries; data_location (14) = EXTERNAL.
    const entry = (k: string, v: string): Field => fMsg(13, [fString(1, k), fString(2, v)]);
    return [...head, entry('location', t.external.location), entry('offset', String(t.external.offset)), entry('length', String(t.data.byteLength)), fVarint(14, 1)];
  }
  return [...head, fBytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

export function buildModel(g: {
  nodes: readonly Node[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  initializers?: readonly Initializer[];
  opset?: number;
}): Uint8Array {
  const graph: Field[] = [];
  g.nodes.forEach((n, i) => {
    graph.push(
      fMsg(1, [
        ...n.inputs.map((x) => fString(1, x)),
        ...n.outputs.map((x) => fString(2, x)),
        fString(3, `n${i}`),
        fString(4, n.op),
        ...Object.entries(n.attrs ?? {}).map(([k, v]) => fMsg(5, attribute(k, v))),
      ]),
    );
  });
  graph.push(fString(2, 'g'));
  for (const t of g.initializers ?? []) graph.push(fMsg(5, tensor(t)));
  for (const v of g.inputs) graph.push(fMsg(11, valueInfo(v)));
  for (const v of g.outputs) graph.push(fMsg(12, valueInfo(v)));
  return concat([
    fVarint(1, 8),
    fString(2, 'winnow-test'),
    fMsg(7, graph),
    fMsg(8, [fString(1, ''), fVarint(2, g.opset ?? 17)]),
  ]);
}

/** Deterministic pseudo-random weights (mulberry32), so fixtures are identical on every run. */
export function seededWeights(n: number, seed: number, scale = 0.05): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
