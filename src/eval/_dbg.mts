import { Evaluator } from './index.js';
const ev = await Evaluator.load({ threads: 1 });
for (const p of process.argv.slice(2)) {
  try { const e = await ev.encodeScene({ part: 'stills', path: p, truthPath: '', name: 'x' }); console.log(p, e.frames.length, e.isStill, e.frames[0].numTokens); } catch (e) { console.log(p, (e as Error).message); }
}
await ev.close();
