import { Rng } from './rng.js';
import type { BackgroundSpec, PlacedObject } from './scene.js';
import { BACKGROUND_RGB, COLOR_RGB, GRADIENT_AMPLITUDE, NOISE_AMPLITUDE } from './world.js';
import { halfExtent } from './scene.js';

/** Renders the fixed background image of a scene (gradient + per-pixel noise), RGB24. */
export function renderBackground(bg: BackgroundSpec, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const base = BACKGROUND_RGB[bg.name];
  const ux = Math.cos(bg.gradientAngleRad);
  const uy = Math.sin(bg.gradientAngleRad);
  const cx = width / 2;
  const cy = height / 2;
  // The gradient spans −A at the extreme pixel behind the direction to +A at the extreme ahead.
  const reach = Math.abs(ux) * (width - 1) / 2 + Math.abs(uy) * (height - 1) / 2;
  const noise = new Rng(bg.noiseSeed);
  let k = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const proj = ((x + 0.5 - cx) * ux + (y + 0.5 - cy) * uy) / (reach || 1);
      const g = GRADIENT_AMPLITUDE * Math.max(-1, Math.min(1, proj));
      for (let c = 0; c < 3; c++) {
        const n = noise.int(-NOISE_AMPLITUDE, NOISE_AMPLITUDE);
        const v = Math.round(base[c] + g + n);
        out[k++] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

/** Whether canvas point (px, py) lies inside the object's shape. */
export function insideObject(o: PlacedObject, px: number, py: number): boolean {
  const h = halfExtent(o.size);
  const dx = px - o.x;
  const dy = py - o.y;
  switch (o.shape) {
    case 'circle':
      return dx * dx + dy * dy <= h * h;
    case 'square':
      return Math.abs(dx) <= h && Math.abs(dy) <= h;
    case 'triangle': {
      // Apex at (x, y − h), base from (x − h, y + h) to (x + h, y + h).
      if (dy < -h || dy > h) return false;
      return Math.abs(dx) <= (h * (dy + h)) / (2 * h);
    }
  }
}

const SUPERSAMPLE = 4;

/**
 * Draws objects over `image` (a copy of the background), anti-aliased by 4×4 supersampling:
 * each pixel blends the object colour by the fraction of samples inside the shape.
 */
export function drawObjects(image: Uint8Array, width: number, height: number, objects: readonly PlacedObject[]): void {
  const step = 1 / SUPERSAMPLE;
  const samples = SUPERSAMPLE * SUPERSAMPLE;
  for (const o of objects) {
    const h = halfExtent(o.size);
    const [r, g, b] = COLOR_RGB[o.color];
    const x0 = Math.max(0, Math.floor(o.x - h) - 1);
    const x1 = Math.min(width - 1, Math.ceil(o.x + h) + 1);
    const y0 = Math.max(0, Math.floor(o.y - h) - 1);
    const y1 = Math.min(height - 1, Math.ceil(o.y + h) + 1);
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let hits = 0;
        for (let sy = 0; sy < SUPERSAMPLE; sy++) {
          for (let sx = 0; sx < SUPERSAMPLE; sx++) {
            if (insideObject(o, x + (sx + 0.5) * step, y + (sy + 0.5) * step)) hits++;
          }
        }
        if (hits === 0) continue;
        const a = hits / samples;
        const i = (y * width + x) * 3;
        image[i] = Math.round(image[i] * (1 - a) + r * a);
        image[i + 1] = Math.round(image[i + 1] * (1 - a) + g * a);
        image[i + 2] = Math.round(image[i + 2] * (1 - a) + b * a);
      }
    }
  }
}

/** Background + objects in one call, for stills. */
export function renderFrame(background: Uint8Array, width: number, height: number, objects: readonly PlacedObject[], out?: Uint8Array): Uint8Array {
  const image = out ?? new Uint8Array(background.length);
  image.set(background);
  drawObjects(image, width, height, objects);
  return image;
}

export interface PatchGeometry {
  /** Model input side (square), e.g. 112. */
  inputSize: number;
  patchSize: number;
  /** How the canvas was mapped to the input: scale to fit inside, then centre-pad. */
  mode: 'fit';
}

/**
 * Per-patch labels at the model's input geometry: for each patch, the index (into `objects`) of the
 * object covering most of it (≥ minCoverage of its area) or −1, and whether it holds an object's centre.
 * Used as dense supervision for the vision tower and as the oracle for the redundancy experiments.
 */
export function patchLabels(
  objects: readonly PlacedObject[],
  canvasWidth: number,
  canvasHeight: number,
  geometry: PatchGeometry,
  minCoverage = 0.1,
): { owner: Int8Array; coverage: Float32Array; centre: Uint8Array; grid: number } {
  const grid = Math.floor(geometry.inputSize / geometry.patchSize);
  const scale = Math.min(geometry.inputSize / canvasWidth, geometry.inputSize / canvasHeight);
  const offX = (geometry.inputSize - Math.round(canvasWidth * scale)) / 2;
  const offY = (geometry.inputSize - Math.round(canvasHeight * scale)) / 2;
  const owner = new Int8Array(grid * grid).fill(-1);
  const coverage = new Float32Array(grid * grid);
  const centre = new Uint8Array(grid * grid);
  const S = 8;
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      let best = -1;
      let bestCov = 0;
      let any = 0;
      for (let k = 0; k < objects.length; k++) {
        let hits = 0;
        for (let sy = 0; sy < S; sy++) {
          for (let sx = 0; sx < S; sx++) {
            const ix = c * geometry.patchSize + ((sx + 0.5) / S) * geometry.patchSize;
            const iy = r * geometry.patchSize + ((sy + 0.5) / S) * geometry.patchSize;
            if (insideObject(objects[k], (ix - offX) / scale, (iy - offY) / scale)) hits++;
          }
        }
        const cov = hits / (S * S);
        any += cov;
        if (cov > bestCov) {
          bestCov = cov;
          best = k;
        }
      }
      coverage[r * grid + c] = Math.min(1, any);
      if (bestCov >= minCoverage) owner[r * grid + c] = best;
    }
  }
  for (let k = 0; k < objects.length; k++) {
    const ix = objects[k].x * scale + offX;
    const iy = objects[k].y * scale + offY;
    const c = Math.min(grid - 1, Math.max(0, Math.floor(ix / geometry.patchSize)));
    const r = Math.min(grid - 1, Math.max(0, Math.floor(iy / geometry.patchSize)));
    centre[r * grid + c] = 1;
    owner[r * grid + c] = k;
  }
  return { owner, coverage, centre, grid };
}
