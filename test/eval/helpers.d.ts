import type { Evaluator } from '../../src/eval/index.js';
export declare function writeBackgroundPng(dir: string): Promise<string>;
/** Every 3rd token of a background-only frame (pad bars and background) as prototypes. */
export declare function makeBackgroundCodebook(ev: Evaluator, dir: string): Promise<string>;
