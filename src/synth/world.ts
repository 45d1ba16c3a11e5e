/** Constants of the synthetic world v1 (docs/default-model.md, "The synthetic world"). */
export const CANVAS_WIDTH = 256;
export const CANVAS_HEIGHT = 192;
export const GRADIENT_AMPLITUDE = 20;
export const NOISE_AMPLITUDE = 10;
export const MIN_GAP_PX = 4;
export const VIDEO_FPS = 10;
export const MAX_OBJECTS = 3;
export const MAX_SPEED_PX_PER_S = 30;

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export type Color = (typeof COLORS)[number];

export const SIZES = ['small', 'large'] as const;
export type Size = (typeof SIZES)[number];

export const BACKGROUNDS = ['gray', 'beige', 'slate', 'olive', 'mauve', 'teal'] as const;
export type Background = (typeof BACKGROUNDS)[number];

export const COLOR_RGB: Record<Color, readonly [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 170, 70],
  blue: [40, 90, 220],
  yellow: [235, 205, 35],
  purple: [150, 70, 200],
  orange: [245, 140, 30],
};

export const BACKGROUND_RGB: Record<Background, readonly [number, number, number]> = {
  gray: [128, 128, 128],
  beige: [200, 190, 160],
  slate: [70, 80, 95],
  olive: [110, 120, 80],
  mauve: [150, 120, 140],
  teal: [90, 120, 120],
};

export const SIZE_PX: Record<Size, number> = { small: 24, large: 40 };

export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;
