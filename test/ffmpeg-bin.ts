// The ffmpeg the tests spawn themselves (to make inputs), found the way the product finds it: PATH
// first, then the build bundled by `npm ci`. A machine without a system ffmpeg then runs the suite
// exactly as `npm ci` left it, as the README promises for the product.
import { resolveFfmpegPath } from '../src/ingest/index.js';

export const FFMPEG = resolveFfmpegPath().path;
