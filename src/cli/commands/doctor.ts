// `winnow doctor`: which ffmpeg/ffprobe and onnxruntime this install uses, what they can do, and whether the
// default model folder is complete. Exit 1 only when something `winnow ask` cannot run without is broken.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { resolveModelDir } from '../../runtime/defaults.js';
import type { FfmpegEnv } from '../../ingest/types.js';

/** From docs/default-model.md. */
export const DEFAULT_MODEL_FILES = [
  'config.json',
  'preprocessor_config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'onnx/vision_encoder.onnx',
  'onnx/embed_tokens.onnx',
  'onnx/decoder_model_merged.onnx',
  'MODEL_CARD.md',
  'reference_outputs.json',
] as const;

type Status = 'ok' | 'warn' | 'fail';
interface Check {
  name: string;
  status: Status;
  detail: string;
  data?: Record<string, unknown>;
}

// --- A one-node ONNX model (Identity on float32[1]) encoded by hand, so doctor can open a real session on any
// execution provider without shipping a model file.
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
const field = (no: number, wire: number): number[] => varint((no << 3) | wire);
const int = (no: number, v: number): number[] => [...field(no, 0), ...varint(v)];
const bytes = (no: number, b: number[]): number[] => [...field(no, 2), ...varint(b.length), ...b];
const str = (no: number, s: string): number[] => bytes(no, [...Buffer.from(s, 'utf8')]);

function valueInfo(name: string): number[] {
  const dim = int(1, 1);
  const shape = bytes(1, dim);
  const tensorType = [...int(1, 1), ...bytes(2, shape)]; // elem_type FLOAT, shape [1]
  const type = bytes(1, tensorType);
  return [...str(1, name), ...bytes(2, type)];
}

export function identityModelBytes(): Uint8Array {
  const node = [...str(1, 'x'), ...str(2, 'y'), ...str(4, 'Identity')];
  const graph = [...bytes(1, node), ...str(2, 'doctor'), ...bytes(11, valueInfo('x')), ...bytes(12, valueInfo('y'))];
  const opset = [...str(1, ''), ...int(2, 13)];
  return Uint8Array.from([...int(1, 7), ...bytes(7, graph), ...bytes(8, opset)]);
}

async function checkBinary(name: 'ffmpeg' | 'ffprobe', env: FfmpegEnv): Promise<Check> {
  const ingest = await import('../../ingest/index.js');
  try {
    const r = name === 'ffmpeg' ? ingest.resolveFfmpegPath({ env }) : ingest.resolveFfprobePath({ env });
    const version = await ingest.binaryVersion(r.path, AbortSignal.timeout(15_000));
    return { name, status: 'ok', detail: `${r.path} (from ${r.source}) — ${version}`, data: { path: r.path, source: r.source, version } };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { name, status: 'fail', detail: msg };
  }
}

async function checkOnnxRuntime(): Promise<Check[]> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    return [{ name: 'onnxruntime-node', status: 'fail', detail: `cannot load: ${e instanceof Error ? e.message : String(e)}` }];
  }
  const checks: Check[] = [];
  const backends = ort.listSupportedBackends();
  checks.push({
    name: 'onnxruntime-node',
    status: 'ok',
    detail: `${ort.env.versions.node ?? ort.env.versions.common}; backends: ${backends.map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`).join(', ')}`,
    data: { version: ort.env.versions.node, backends },
  });
  const model = identityModelBytes();
  for (const ep of ['cpu', 'cuda'] as const) {
    try {
      // Severity 4 (fatal only): a missing CUDA library is reported below, not as a native log dump.
      const session = await ort.InferenceSession.create(model, { executionProviders: [ep], logSeverityLevel: 4 });
      const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(42), [1]) });
      await session.release();
      const ok = (out.y?.data as Float32Array | undefined)?.[0] === 42;
      checks.push({ name: `execution provider ${ep}`, status: ok ? 'ok' : 'fail', detail: ok ? 'session created and ran' : 'session ran but returned a wrong value' });
    } catch (e) {
      const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
      checks.push({
        name: `execution provider ${ep}`,
        status: ep === 'cpu' ? 'fail' : 'warn',
        detail:
          ep === 'cpu'
            ? `cannot run a model: ${msg}`
            : `not available (${msg}); GPU users: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (see docs/gpu.md)`,
      });
    }
  }
  return checks;
}

function checkModel(dir: string): Check {
  if (!existsSync(dir)) {
    return { name: 'default model', status: 'warn', detail: `${dir} does not exist yet (winnow ask needs it)`, data: { dir, missing: [...DEFAULT_MODEL_FILES] } };
  }
  const missing: string[] = [];
  const empty: string[] = [];
  for (const f of DEFAULT_MODEL_FILES) {
    const p = join(dir, f);
    try {
      const st = statSync(p);
      if (!st.isFile()) missing.push(f);
      else if (st.size === 0) empty.push(f);
    } catch {
      missing.push(f);
    }
  }
  if (missing.length || empty.length) {
    const parts = [missing.length ? `missing: ${missing.join(', ')}` : '', empty.length ? `empty: ${empty.join(', ')}` : ''].filter(Boolean);
    return { name: 'default model', status: 'fail', detail: `${dir} is incomplete — ${parts.join('; ')}`, data: { dir, missing, empty } };
  }
  return { name: 'default model', status: 'ok', detail: `${dir} has all ${DEFAULT_MODEL_FILES.length} files`, data: { dir } };
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check ffmpeg/ffprobe, onnxruntime execution providers and the default model folder')
    .option('--model <dir>', 'model folder to check', '')
    .option('--json', 'print the report as one JSON object')
    .action(async (flags: { model: string; json?: boolean }) => {
      // Entry point: the only place these environment variables are read.
      const env: FfmpegEnv = { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG, WINNOW_FFPROBE: process.env.WINNOW_FFPROBE };
      const modelDir = resolveModelDir(flags.model || undefined);
      const checks: Check[] = [await checkBinary('ffmpeg', env), await checkBinary('ffprobe', env), ...(await checkOnnxRuntime()), checkModel(modelDir)];
      const failed = checks.some((c) => c.status === 'fail');
      if (flags.json) {
        process.stdout.write(JSON.stringify({ ok: !failed, checks }) + '\n');
      } else {
        const mark: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };
        for (const c of checks) process.stdout.write(`[${mark[c.status]}] ${c.name}: ${c.detail}\n`);
        process.stdout.write(failed ? 'doctor: something required is broken (see FAIL lines)\n' : 'doctor: ready\n');
      }
      process.exitCode = failed ? 1 : 0;
    });
}
