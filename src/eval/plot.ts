// Accuracy vs kept-token fraction, one line per strategy, one panel per part: a Vega-Lite spec
// rendered headless to SVG by Vega (no canvas needed), then rasterised to PNG by sharp.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { WinnowError } from '../errors.js';
import type { EvalReport, PartReport } from './types.js';

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
