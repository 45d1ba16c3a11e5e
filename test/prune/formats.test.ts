// float16 conversions, safetensors and .npy round trips, the safe unpickler and .pt import.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { bf16BitsToF32, f16BitsToF32, f32ToF16Bits, decodeF16, encodeF16 } from '../../src/prune/float16.js';
import { readSafetensors, writeSafetensors } from '../../src/prune/safetensors.js';
import { readNpy, writeNpy } from '../../src/prune/npy.js';
import { unpickle } from '../../src/prune/pickle.js';
import { readTorchTensor } from '../../src/prune/torch-pt.js';
import { decodeSafetensorsCodebook, encodeCodebook, loadCodebook, saveCodebook, type Codebook } from '../../src/prune/codebook.js';
import { thrownCode, withTempDir } from '../shared/index.js';
import { LLAVA15_PT, LLAVAOV_PT, haveSeeds } from './helpers.js';


test('float16: known values, exact f16→f32→f16 for all 65536 patterns, round-to-nearest-even', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  for (let h = 0; h < 65536; h++) {
    const exp = (h >> 10) & 0x1f;
    if (exp === 0x1f && (h & 0x3ff) !== 0) continue; // NaN payloads
    assert.equal(f32ToF16Bits(f16BitsToF32(h)), h, `pattern 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // halfway → even (down)
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // halfway → even (up)
  assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds past max → Inf
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // halfway to smallest subnormal → even (0)
  assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0xc040), -3);
  const vals = Float32Array.of(0.1, -3.14159, 1e-6, 70000, 0.5);
  const back = decodeF16(encodeF16(vals), 0, vals.length);
  assert.deepEqual(Array.from(back), [0.0999755859375, -3.140625, 1.0132789611816406e-6, Infinity, 0.5]);
});

test('safetensors: exact F32 and F16 round trips with metadata, 8-byte aligned data', () => {
  const data = Float32Array.from({ length: 6 * 5 }, (_, i) => Math.sin(i) * 10);
  const bytes = writeSafetensors(
    { a: { dtype: 'F32', shape: [6, 5], data }, b: { dtype: 'F16', shape: [30], data } },
    { note: 'hi', nested: JSON.stringify({ x: [1, 2] }) },
  );
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0);
  const f = readSafetensors(bytes);
  assert.deepEqual(f.metadata, { note: 'hi', nested: '{"x":[1,2]}' });
  assert.deepEqual(f.tensors.get('a')?.shape, [6, 5]);
  assert.deepEqual(f.tensors.get('a')?.data, data);
  const f16 = f.tensors.get('b');
  assert.equal(f16?.dtype, 'F16');
  for (let i = 0; i < data.length; i++) assert.equal(f16?.data[i], f16BitsToF32(f32ToF16Bits(data[i])));
  // Writing the decoded F16 values again reproduces the bytes exactly.
  const again = writeSafetensors({ a: { dtype: 'F32', shape: [6, 5], data }, b: { dtype: 'F16', shape: [30], data: f16!.data } }, { note: 'hi', nested: '{"x":[1,2]}' });
  assert.deepEqual(again, bytes);
});

test('safetensors: rejects truncated, oversized, overlapping and mistyped files', () => {
  const good = writeSafetensors({ t: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3, 4] } });
  assert.equal(thrownCode(() => readSafetensors(good.subarray(0, 5))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readSafetensors(good.subarray(0, good.length - 4))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readSafetensors(good, { maxHeaderBytes: 8 })), 'WINNOW_ERR_CODEBOOK_FORMAT');
  const craft = (header: unknown, dataBytes: number): Uint8Array => {
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  assert.equal(thrownCode(() => readSafetensors(craft({ t: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readSafetensors(craft({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, 8))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readSafetensors(craft({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(
    thrownCode(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12))),
    'WINNOW_ERR_CODEBOOK_FORMAT',
  );
  assert.equal(thrownCode(() => readSafetensors(craft({ __metadata__: { k: 1 } }, 0))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
  assert.equal(thrownCode(() => readSafetensors(huge)), 'WINNOW_ERR_CODEBOOK_FORMAT');
});

test('npy: f2/f4 round trip, v2 header, rejects Fortran order and 3-D', () => {
  const data = Float32Array.from({ length: 12 }, (_, i) => i / 7);
  const m = readNpy(writeNpy(data, 3, 4, '<f4'));
  assert.deepEqual([m.rows, m.cols, m.dtype], [3, 4, '<f4']);
  assert.deepEqual(m.data, data);
  const h = readNpy(writeNpy(data, 4, 3, '<f2'));
  assert.equal(h.dtype, '<f2');
  for (let i = 0; i < 12; i++) assert.equal(h.data[i], f16BitsToF32(f32ToF16Bits(data[i])));
  const v2 = (header: string, payload: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + header.length + payload.length);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
    new DataView(out.buffer).setUint32(8, header.length, true);
    for (let i = 0; i < header.length; i++) out[12 + i] = header.charCodeAt(i);
    out.set(payload, 12 + header.length);
    return out;
  };
  const payload = new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer);
  assert.deepEqual(Array.from(readNpy(v2("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", payload)).data), [1, 2, 3, 4]);
  assert.equal(thrownCode(() => readNpy(v2("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", payload))), 'WINNOW_ERR_CORRUPT_INPUT');
  assert.equal(thrownCode(() => readNpy(v2("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }\n", payload))), 'WINNOW_ERR_CORRUPT_INPUT');
  assert.equal(thrownCode(() => readNpy(v2("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }\n", payload))), 'WINNOW_ERR_CORRUPT_INPUT');
  assert.equal(thrownCode(() => readNpy(new Uint8Array(20))), 'WINNOW_ERR_CORRUPT_INPUT');
});

// --- a tiny pickle assembler, to build torch-like and hostile pickles byte by byte -------------
const enc = new TextEncoder();
function bu(s: string): number[] {
  const b = enc.encode(s);
  return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b];
}
const glob = (m: string, n: string): number[] => [0x63, ...enc.encode(`${m}\n${n}\n`)];
const int = (v: number): number[] => [0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
/** What torch.save writes for one tensor (see `python3 -m pickletools data.pkl`). */
function tensorPickle(storageClass: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  return Uint8Array.from([
    0x80, 2,
    ...glob('torch._utils', '_rebuild_tensor_v2'),
    0x28, // MARK
    0x28, ...bu('storage'), ...glob('torch', storageClass), ...bu('0'), ...bu('cuda:0'), ...int(numel), 0x74, 0x51, // (…) BINPERSID
    ...int(offset),
    0x28, ...size.flatMap(int), 0x74,
    0x28, ...stride.flatMap(int), 0x74,
    0x89, // False
    ...glob('collections', 'OrderedDict'), 0x29, 0x52, // OrderedDict()
    0x74, 0x52, 0x2e, // TUPLE REDUCE STOP
  ]);
}
function ptZip(pkl: Uint8Array, storage: Uint8Array): Uint8Array {
  return zipSync({ 'archive/data.pkl': pkl, 'archive/data/0': storage, 'archive/version': enc.encode('3\n'), 'archive/byteorder': enc.encode('little') }, { level: 0 });
}

test('unpickler: refuses non-allow-listed globals, opcodes and REDUCE targets', () => {
  const evil = [
    Uint8Array.from([0x80, 2, ...glob('os', 'system'), ...bu('echo pwned'), 0x85, 0x52, 0x2e]),
    Uint8Array.from([0x80, 2, ...glob('builtins', 'eval'), 0x2e]),
    Uint8Array.from([0x80, 2, ...glob('torch', 'HalfStorage'), 0x29, 0x52, 0x2e]), // allowed name, not callable here
    Uint8Array.from([0x80, 2, 0x28, ...glob('collections', 'OrderedDict'), 0x29, 0x81, 0x2e]), // NEWOBJ
    Uint8Array.from([0x80, 2, 0x7d, 0x7d, 0x62, 0x2e]), // BUILD
    Uint8Array.from([0x80, 4, 0x8c, 2, 0x6f, 0x73, 0x8c, 6, ...enc.encode('system'), 0x93, 0x2e]), // STACK_GLOBAL
    Uint8Array.from([0x80, 2, ...bu('x'), 0x51, 0x2e]), // persistent id that is not a storage
    Uint8Array.from([0x80, 2, ...glob('collections', 'OrderedDict'), ...bu('x'), 0x85, 0x52, 0x2e]),
  ];
  for (const p of evil) assert.equal(thrownCode(() => unpickle(p)), 'WINNOW_ERR_UNSAFE_PICKLE', Buffer.from(p).toString('latin1'));
  assert.equal(thrownCode(() => unpickle(Uint8Array.from([0x80, 2, 0x4a, 1]))), 'WINNOW_ERR_CODEBOOK_FORMAT'); // truncated
  const d = unpickle(Uint8Array.from([0x80, 2, 0x7d, 0x28, ...bu('a'), 0x4b, 7, ...bu('b'), 0x88, 0x75, 0x2e]));
  assert.ok(d instanceof Map);
  assert.deepEqual([...(d as Map<unknown, unknown>).entries()], [['a', 7], ['b', true]]);
});

test('.pt import: float32 / bfloat16 storages, storage offsets, non-contiguous and hostile archives', async () => {
  const f32 = Float32Array.from({ length: 10 }, (_, i) => i * 0.5);
  const t = readTorchTensor(ptZip(tensorPickle('FloatStorage', 10, 2, [2, 3], [3, 1]), new Uint8Array(f32.buffer)));
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual(Array.from(t.data), [1, 1.5, 2, 2.5, 3, 3.5]);
  const bf = new Uint16Array([0x3f80, 0x4000, 0xc040, 0x0000]); // 1, 2, -3, 0
  const tb = readTorchTensor(ptZip(tensorPickle('BFloat16Storage', 4, 0, [2, 2], [2, 1]), new Uint8Array(bf.buffer)));
  assert.deepEqual(Array.from(tb.data), [1, 2, -3, 0]);
  // A transposed view is refused rather than silently mis-read.
  assert.equal(thrownCode(() => readTorchTensor(ptZip(tensorPickle('FloatStorage', 10, 0, [2, 3], [1, 2]), new Uint8Array(f32.buffer)))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readTorchTensor(ptZip(tensorPickle('FloatStorage', 10, 8, [2, 3], [3, 1]), new Uint8Array(f32.buffer)))), 'WINNOW_ERR_CODEBOOK_FORMAT');
  assert.equal(thrownCode(() => readTorchTensor(ptZip(tensorPickle('DoubleStorage', 10, 0, [2, 3], [3, 1]), new Uint8Array(f32.buffer)))), 'WINNOW_ERR_UNSAFE_PICKLE');
  const evil = ptZip(Uint8Array.from([0x80, 2, ...glob('os', 'system'), ...bu('touch /tmp/x'), 0x85, 0x52, 0x2e]), new Uint8Array(0));
  await withTempDir('winnow-pt-', async (dir) => {
    writeFileSync(join(dir, 'evil.pt'), evil);
    await assert.rejects(loadCodebook(join(dir, 'evil.pt')), (e: { code?: string }) => e.code === 'WINNOW_ERR_UNSAFE_PICKLE');
    writeFileSync(join(dir, 'legacy.pt'), Uint8Array.from([0x80, 2, 0x8a, 0x0a]));
    await assert.rejects(loadCodebook(join(dir, 'legacy.pt')), (e: { code?: string }) => e.code === 'WINNOW_ERR_CODEBOOK_FORMAT');
  });
});

test('released .pt codebooks: shapes, dtype, values equal the raw storage, sample ids, safetensors round trip', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  for (const [path, P, D] of [[LLAVA15_PT, 454, 4096], [LLAVAOV_PT, 45, 3584]] as const) {
    const cb = await loadCodebook(path);
    assert.deepEqual([cb.count, cb.dim, cb.dtype], [P, D, 'F16']);
    assert.equal(cb.build?.sampleIds?.length, P);
    // Independent decode of the raw storage with DataView + the f16 formula.
    const files = unzipSync(readFileSync(path));
    const raw = files[Object.keys(files).find((n) => n.endsWith('/data/0'))!];
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (const i of [0, 1, 777, P * D - 1]) {
      const h = dv.getUint16(i * 2, true);
      const e = (h >> 10) & 31;
      const m = h & 1023;
      const v = (h & 0x8000 ? -1 : 1) * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
      assert.equal(cb.prototypes[i], v);
    }
    // .pt → .safetensors (F16) → read: bit-exact, metadata survives.
    const back = decodeSafetensorsCodebook(encodeCodebook(cb, 'F16'));
    assert.deepEqual(back.prototypes, cb.prototypes);
    assert.deepEqual(back.model, cb.model);
    assert.deepEqual(back.defaults, cb.defaults);
    assert.deepEqual(back.build, cb.build);
  }
});

test('codebook safetensors: structured metadata round trip, validation errors, .pt beside .samples.json', async () => {
  const cb: Codebook = {
    prototypes: Float32Array.from({ length: 3 * 4 }, (_, i) => i - 5.25),
    count: 3,
    dim: 4,
    dtype: 'F32',
    model: { name: 'winnow-tiny', llmWidth: 4, visionEncoderSha256: 'ab'.repeat(32) },
    defaults: { strategy: 'ratio', ratio: 0.25 },
    build: { source: 'unit test', imageCount: 2, parameters: { k: 5, tauJsd: 0.002 }, sampleIds: ['1', '2', '2'] },
    extraMetadata: { comment: 'x' },
  };
  await withTempDir('winnow-cb-', async (dir) => {
    await saveCodebook(join(dir, 'c.safetensors'), cb, { dtype: 'F32' });
    const back = await loadCodebook(join(dir, 'c.safetensors'));
    assert.deepEqual(back.prototypes, cb.prototypes);
    assert.deepEqual([back.model, back.defaults, back.build, back.extraMetadata], [cb.model, cb.defaults, cb.build, cb.extraMetadata]);
    const meta = readSafetensors(readFileSync(join(dir, 'c.safetensors'))).metadata;
    assert.equal(meta.format, 'winnow-codebook/1');
    assert.deepEqual(JSON.parse(meta.model), cb.model);
    assert.equal(thrownCode(() => encodeCodebook({ ...cb, model: { name: 'm', llmWidth: 8 } })), 'WINNOW_ERR_CODEBOOK_MISMATCH');
    assert.equal(thrownCode(() => encodeCodebook({ ...cb, build: { source: 's', sampleIds: ['1'] } })), 'WINNOW_ERR_CODEBOOK_FORMAT');
    const bad = writeSafetensors({ prototypes: { dtype: 'F32', shape: [3, 4], data: cb.prototypes } }, { defaults: '{"strategy":"magic"}' });
    assert.equal(thrownCode(() => decodeSafetensorsCodebook(bad)), 'WINNOW_ERR_CODEBOOK_FORMAT');
    const noTensor = writeSafetensors({ other: { dtype: 'F32', shape: [3, 4], data: cb.prototypes } });
    assert.equal(thrownCode(() => decodeSafetensorsCodebook(noTensor)), 'WINNOW_ERR_CODEBOOK_FORMAT');
    await assert.rejects(loadCodebook(join(dir, 'missing.safetensors')), (e: { code?: string }) => e.code === 'WINNOW_ERR_IO');
    if (haveSeeds) {
      // Without the .samples.json beside it, a .pt still loads, just without sample ids.
      copyFileSync(LLAVAOV_PT, join(dir, 'ov.pt'));
      const ov = await loadCodebook(join(dir, 'ov.pt'));
      assert.equal(ov.build?.sampleIds, undefined);
      assert.equal(ov.count, 45);
    }
  });
});
