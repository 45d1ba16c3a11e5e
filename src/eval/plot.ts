// Accuracy vs kept-token fraction, one line per strategy, one panel per part: a Vega-Lite spec
// rendered headless to SVG by Vega (no canvas needed), then rasterised to PNG by sharp; and the
// long-video evaluation's accuracy and cost against time into the video.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { WinnowError } from '../errors.js';
import { longRows } from './long-report.js';
import { VIDEO_FAMILIES, pooled } from './report.js';
import type { EvalReport, LongEvalReport, PartReport } from './types.js';

interface Point {
  strategy: string;
  kept: number;
  accuracy: number;
  budget: string;
}

function points(p: PartReport): { lines: Point[]; none: number | null } {
  const lines: Point[] = [];
  let none: number | null = null;
  for (const r of p.rows) {
    const acc = r.summary.headline.accuracy;
    if (acc === null) continue;
    if (r.strategy === 'none') {
      none = acc;
      continue;
    }
    // Floor at 0.5 % so a zero-token setting still shows on the log axis.
    lines.push({ strategy: r.label ? `${r.strategy} (${r.label})` : r.strategy, kept: Math.max(0.005, r.summary.keptFraction), accuracy: acc, budget: r.label ?? String(r.budget) });
  }
  // Codebook-default points join their strategy's line.
  for (const pt of lines) if (pt.strategy.startsWith('threshold (')) pt.strategy = 'threshold';
  return { lines, none };
}

function panel(p: PartReport, title: string): Record<string, unknown> {
  const { lines, none } = points(p);
  const layers: Record<string, unknown>[] = [
    {
      data: { values: lines },
      mark: { type: 'line', point: { size: 50 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'kept', type: 'quantitative', title: 'kept fraction of visual tokens', scale: { type: 'log', domain: [0.005, 1] }, axis: { values: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1], format: '.0%', labelFlush: true, labelOverlap: false } },
        y: { field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: { field: 'strategy', type: 'nominal', title: 'strategy', scale: { scheme: 'tableau10' } },
        order: { field: 'kept', type: 'quantitative' },
      },
    },
  ];
  if (none !== null) {
    layers.push({
      data: { values: [{ y: none, label: `none (all tokens) ${(100 * none).toFixed(1)}%` }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [6, 4], color: '#444' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
        { mark: { type: 'text', align: 'left', dx: 4, dy: -7, color: '#444' }, encoding: { y: { field: 'y', type: 'quantitative' }, x: { datum: 0.006 }, text: { field: 'label' } } },
      ],
    });
  }
  return { title, width: 420, height: 300, layer: layers };
}

/** The Vega-Lite spec of the plot (exported for inspection / tests). */
export function plotSpec(report: EvalReport): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  for (const p of report.parts) {
    if (p.rows.length === 0) continue;
    panels.push(panel(p, p.part === 'stills' ? `Frame questions F1–F4 on stills (${p.scenes})` : `Video questions V1–V3 on 1-fps videos (${p.scenes})`));
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    padding: 12,
    title: { text: `winnow eval: accuracy vs kept visual tokens (${report.model.name ?? 'model'}, set seed ${report.set.seed ?? '?'})`, fontSize: 15 },
    hconcat: panels,
    resolve: { scale: { color: 'shared' } },
    config: { font: 'DejaVu Sans', view: { stroke: '#ccc' } },
  };
}

/** Renders the plot to `outPath` (PNG) and returns the SVG too. */
export async function renderPlot(report: EvalReport, outPath: string, scale = 2): Promise<{ svg: string }> {
  const spec = plotSpec(report);
  if ((spec.hconcat as unknown[]).length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'nothing to plot (no evaluated rows)');
  return renderSpec(spec, outPath, scale);
}

/**
 * Long videos: V1–V3 and V4 accuracy and ms per frame at each checkpoint, against the time into
 * the video (log minutes), one line per run and length.
 */
export function longPlotSpec(report: LongEvalReport): Record<string, unknown> {
  const values = longRows(report).flatMap((r) => {
    const v = pooled(r.families, VIDEO_FAMILIES).accuracy;
    const base = { run: `${r.label}, ${r.lengthMin} min`, atMin: Math.max(0.1, r.atMin) };
    return [
      ...(v === null ? [] : [{ ...base, metric: 'V1–V3 accuracy', value: v }]),
      ...(r.families.V4?.accuracy == null ? [] : [{ ...base, metric: 'V4 accuracy (±2 s)', value: r.families.V4.accuracy }]),
      { ...base, metric: 'ms per frame', value: r.msPerFrame },
    ];
  });
  const panel = (metric: string, axis: Record<string, unknown>): Record<string, unknown> => ({
    title: metric,
    width: 320,
    height: 240,
    transform: [{ filter: { field: 'metric', equal: metric } }],
    mark: { type: 'line', point: { size: 50 }, strokeWidth: 2 },
    encoding: {
      x: { field: 'atMin', type: 'quantitative', title: 'minutes into the video', scale: { type: 'log' } },
      y: { field: 'value', type: 'quantitative', title: metric, ...axis },
      color: { field: 'run', type: 'nominal', title: 'run, length', scale: { scheme: 'tableau10' } },
      order: { field: 'atMin', type: 'quantitative' },
    },
  });
  const pctAxis = { scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    padding: 12,
    title: { text: `winnow eval --long: accuracy and cost over watch videos (${report.model.name ?? 'model'}, seed ${report.options.seed})`, fontSize: 15 },
    data: { values },
    hconcat: [panel('V1–V3 accuracy', pctAxis), panel('V4 accuracy (±2 s)', pctAxis), panel('ms per frame', {})],
    resolve: { scale: { color: 'shared' } },
    config: { font: 'DejaVu Sans', view: { stroke: '#ccc' } },
  };
}

export async function renderLongPlot(report: LongEvalReport, outPath: string, scale = 2): Promise<{ svg: string }> {
  if (report.videos.every((v) => v.runs.every((r) => r.checkpoints.length === 0))) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'nothing to plot (no checkpoint was asked)');
  return renderSpec(longPlotSpec(report), outPath, scale);
}

/** Vega-Lite → SVG (headless Vega) → PNG (sharp). */
async function renderSpec(spec: Record<string, unknown>, outPath: string, scale: number): Promise<{ svg: string }> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG(scale);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, await sharp(Buffer.from(svg)).png().toBuffer());
    return { svg };
  } finally {
    view.finalize();
  }
}
