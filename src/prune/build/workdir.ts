// The resumable work directory of a codebook build:
//   manifest.json   what the build is (parameters, model fingerprint, source); written once, atomically
//   images.jsonl    one line per finished image (its token experiments' measures), append-only
//   rows.f32        every image's projected tokens (float32 LE), append-only, in the order of the lines
// The LLM experiments (the expensive part) are all the work dir holds; the selection steps run at
// the end from it, so their constants can be changed and the build re-run without redoing them.
// An image counts as done once its line is complete. Rows are appended and synced before the line,
// so a kill at any moment leaves at worst a torn last line and/or surplus rows, which open()
// cuts off: the directory then holds exactly the images whose lines are complete.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WinnowError } from '../../errors.js';

export const WORKDIR_FORMAT = 'winnow-codebook-work/1';

export interface ImageRecord {
  /** Position of the image in the source order. */
  i: number;
  id: string;
  gridH: number;
  gridW: number;
  topProb: number[];
  jsdCtx: number[];
  jsdGlob: number[];
  /** Index (in rows) of this image's first token row in rows.f32. */
  rowOffset: number;
  /** Token rows of this image (gridH · gridW). */
  rowCount: number;
  /** Wall time of this image's experiments, ms (informational). */
  ms: number;
}

export interface Manifest {
  format: string;
  dim: number;
  key: Record<string, unknown>;
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as Record<string, unknown>)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export class WorkDir {
  private readonly records: ImageRecord[] = [];
  private readonly ids = new Map<string, ImageRecord>();
  private rowCount = 0;
  private linesFd = -1;
  private rowsFd = -1;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly dim: number,
  ) {}

  /**
   * Opens (creating when absent) a work dir for the build described by `key`. A work dir made for
   * a different build (other parameters, model, source) is refused rather than mixed.
   */
  static open(dir: string, dim: number, key: Record<string, unknown>): WorkDir {
    mkdirSync(dir, { recursive: true });
    const manifestPath = join(dir, 'manifest.json');
    const manifest: Manifest = { format: WORKDIR_FORMAT, dim, key };
    if (existsSync(manifestPath)) {
      let old: Manifest;
      try {
        old = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
      } catch (e) {
        throw new WinnowError('WINNOW_ERR_IO', `${manifestPath} is not valid JSON`, { cause: e, details: { path: manifestPath } });
      }
      if (stableJson(old) !== stableJson(manifest)) {
        const changed = Object.keys({ ...old.key, ...key }).filter((k) => stableJson(old.key?.[k]) !== stableJson(key[k]));
        throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `work dir ${dir} belongs to a different build (${changed.join(', ') || 'format'} differ); use another --work or delete it`, {
          details: { dir, changed },
        });
      }
    } else {
      atomicWrite(manifestPath, JSON.stringify(manifest, null, 1) + '\n');
    }
    const wd = new WorkDir(dir, dim);
    wd.recover();
    return wd;
  }

  /** Fingerprint of the manifest key (for logs). */
  static keyHash(key: Record<string, unknown>): string {
    return createHash('sha256').update(stableJson(key)).digest('hex').slice(0, 16);
  }

  private recover(): void {
    const linesPath = join(this.dir, 'images.jsonl');
    const rowsPath = join(this.dir, 'rows.f32');
    this.linesFd = openSync(linesPath, existsSync(linesPath) ? 'r+' : 'w+');
    this.rowsFd = openSync(rowsPath, existsSync(rowsPath) ? 'r+' : 'w+');
    const text = readFileSync(linesPath, 'utf8');
    let goodBytes = 0;
    let pos = 0;
    while (pos < text.length) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) break; // torn last line
      const line = text.slice(pos, nl);
      let rec: ImageRecord;
      try {
        rec = JSON.parse(line) as ImageRecord;
      } catch {
        break;
      }
      if (rec.rowOffset !== this.rowCount) break;
      this.records.push(rec);
      this.ids.set(rec.id, rec);
      this.rowCount += rec.rowCount;
      pos = nl + 1;
      goodBytes = Buffer.byteLength(text.slice(0, pos), 'utf8');
    }
    ftruncateSync(this.linesFd, goodBytes);
    const rowBytes = this.rowCount * this.dim * 4;
    const have = statSync(rowsPath).size;
    if (have < rowBytes) {
      throw new WinnowError('WINNOW_ERR_IO', `${rowsPath} holds ${have} bytes, the finished images need ${rowBytes}; the work dir is damaged`, { details: { path: rowsPath } });
    }
    ftruncateSync(this.rowsFd, rowBytes);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  get(id: string): ImageRecord | undefined {
    return this.ids.get(id);
  }

  /** Finished images in the order they were finished (= source order). */
  get done(): readonly ImageRecord[] {
    return this.records;
  }

  get totalRows(): number {
    return this.rowCount;
  }

  /** Appends one finished image: rows first (synced), then its line (synced). */
  append(rec: Omit<ImageRecord, 'rowOffset'>, rows: Float32Array): ImageRecord {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the work dir is closed');
    if (rows.length !== rec.rowCount * this.dim) throw new WinnowError('WINNOW_ERR_INTERNAL', 'rows do not match rowCount');
    const full: ImageRecord = { ...rec, rowOffset: this.rowCount };
    const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    writeSync(this.rowsFd, bytes, 0, bytes.length, this.rowCount * this.dim * 4);
    fsyncSync(this.rowsFd);
    const line = Buffer.from(JSON.stringify(full) + '\n', 'utf8');
    const end = statSync(join(this.dir, 'images.jsonl')).size;
    writeSync(this.linesFd, line, 0, line.length, end);
    fsyncSync(this.linesFd);
    this.records.push(full);
    this.ids.set(full.id, full);
    this.rowCount += rec.rowCount;
    return full;
  }

  /** All token rows of the finished images, [totalRows × dim]. */
  readRows(): Float32Array {
    const buf = readFileSync(join(this.dir, 'rows.f32'));
    const n = this.rowCount * this.dim;
    // Copy out of the Buffer: its byteOffset need not be 4-aligned.
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + n * 4));
  }

  /** One finished image's token rows, [rowCount × dim]. */
  readImageRows(rec: ImageRecord): Float32Array {
    const out = new Float32Array(rec.rowCount * this.dim);
    readSync(this.rowsFd, new Uint8Array(out.buffer), 0, out.byteLength, rec.rowOffset * this.dim * 4);
    return out;
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.linesFd);
    closeSync(this.rowsFd);
  }
}
