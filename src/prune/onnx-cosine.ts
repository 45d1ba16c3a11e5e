// Builds, in memory, the ONNX model used by the exact scorer:
//   S[L,P] = (X[L,D] · Cn^T) / max(‖x‖, 1e-12)
// with the unit-normalised codebook Cn^T baked in as an initializer. MLAS (onnxruntime's GEMM)
// is several times faster than any scalar JS loop for these sizes, and it is already a
// dependency. Only the handful of protobuf fields ONNX needs are encoded here.

class PbWriter {
  private parts: Uint8Array[] = [];
  private len = 0;
  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.len += b.byteLength;
  }
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      out.push(byte);
    } while (x !== 0n);
    this.push(Uint8Array.from(out));
  }
  int(field: number, v: number): this {
    this.varint((field << 3) | 0);
    this.varint(v);
    return this;
  }
  ints(field: number, values: number[]): this {
    for (const v of values) this.int(field, v);
    return this;
  }
  float(field: number, v: number): this {
    this.varint((field << 3) | 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.varint((field << 3) | 2);
    this.varint(b.byteLength);
    this.push(b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, w: PbWriter): this {
    return this.bytes(field, w.finish());
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.len);
    let p = 0;
    for (const part of this.parts) {
      out.set(part, p);
      p += part.byteLength;
    }
    return out;
  }
}

const FLOAT = 1;
const INT32 = 6;

function valueInfo(name: string, dims: Array<number | string>, elemType = FLOAT): PbWriter {
  const shape = new PbWriter();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new PbWriter().int(1, d) : new PbWriter().str(2, d));
  const tensorType = new PbWriter().int(1, elemType).msg(2, shape);
  return new PbWriter().str(1, name).msg(2, new PbWriter().msg(1, tensorType));
}

function node(op: string, inputs: string[], outputs: string[], attrs: PbWriter[] = []): PbWriter {
  const w = new PbWriter();
  for (const i of inputs) w.str(1, i);
  for (const o of outputs) w.str(2, o);
  w.str(3, `${op}_${outputs[0]}`).str(4, op);
  for (const a of attrs) w.msg(5, a);
  return w;
}

function floatTensor(name: string, dims: number[], data: Float32Array): PbWriter {
  const w = new PbWriter();
  for (const d of dims) w.int(1, d);
  w.int(2, FLOAT).str(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return w;
}

/**
 * @param codebookT unit-normalised prototypes, TRANSPOSED: D×P row-major.
 */
export function buildCosineModel(codebookT: Float32Array, dim: number, count: number): Uint8Array {
  const axesAttr = new PbWriter().str(1, 'axes').ints(8, [1]).int(20, 7);
  const keepAttr = new PbWriter().str(1, 'keepdims').int(3, 1).int(20, 2);
  const graph = new PbWriter()
    .msg(1, node('ReduceL2', ['X'], ['norm'], [axesAttr, keepAttr]))
    .msg(1, node('Max', ['norm', 'eps'], ['denom']))
    .msg(1, node('MatMul', ['X', 'CT'], ['dots']))
    .msg(1, node('Div', ['dots', 'denom'], ['S']))
    .str(2, 'winnow_cosine')
    .msg(5, floatTensor('CT', [dim, count], codebookT))
    .msg(5, floatTensor('eps', [], Float32Array.of(1e-12)))
    .msg(11, valueInfo('X', ['L', dim]))
    .msg(12, valueInfo('S', ['L', count]));
  return new PbWriter()
    .int(1, 8) // ir_version
    .str(2, 'winnow')
    .msg(7, graph)
    .msg(8, new PbWriter().str(1, '').int(2, 13))
    .finish();
}

/**
 * The fused variant for max-similarity scoring: the N×P matrix never leaves onnxruntime, only
 *   maxSim[N,1] = max_p(X·Cn^T) / max(‖x‖, 1e-12)   and   argMax[N,1] (int32)
 * come back. Dividing after the row maximum gives bit-for-bit the maximum of the divided row
 * (IEEE division by a positive number is monotone), so scores equal those of buildCosineModel.
 * @param codebookT unit-normalised prototypes, TRANSPOSED: D×P row-major.
 */
export function buildMaxCosineModel(codebookT: Float32Array, dim: number, count: number): Uint8Array {
  const axesAttr = new PbWriter().str(1, 'axes').ints(8, [1]).int(20, 7);
  const keepAttr = new PbWriter().str(1, 'keepdims').int(3, 1).int(20, 2);
  const axisAttr = new PbWriter().str(1, 'axis').int(3, 1).int(20, 2);
  const toAttr = new PbWriter().str(1, 'to').int(3, INT32).int(20, 2);
  const graph = new PbWriter()
    .msg(1, node('ReduceL2', ['X'], ['norm'], [axesAttr, keepAttr]))
    .msg(1, node('Max', ['norm', 'eps'], ['denom']))
    .msg(1, node('MatMul', ['X', 'CT'], ['dots']))
    .msg(1, node('ReduceMax', ['dots'], ['rowMax'], [axesAttr, keepAttr]))
    .msg(1, node('Div', ['rowMax', 'denom'], ['maxSim']))
    .msg(1, node('ArgMax', ['dots'], ['argMax64'], [axisAttr, keepAttr]))
    .msg(1, node('Cast', ['argMax64'], ['argMax'], [toAttr]))
    .str(2, 'winnow_max_cosine')
    .msg(5, floatTensor('CT', [dim, count], codebookT))
    .msg(5, floatTensor('eps', [], Float32Array.of(1e-12)))
    .msg(11, valueInfo('X', ['N', dim]))
    .msg(12, valueInfo('maxSim', ['N', 1]))
    .msg(12, valueInfo('argMax', ['N', 1], INT32));
  return new PbWriter()
    .int(1, 8) // ir_version
    .str(2, 'winnow')
    .msg(7, graph)
    .msg(8, new PbWriter().str(1, '').int(2, 13))
    .finish();
}
