// Preloaded into the service by the benchmark (`node --expose-gc --import …`): on SIGUSR2 it
// collects garbage and writes the V8 heap in use, in bytes, to BENCH_HEAP_FILE. Nothing else changes.
import { writeFileSync } from 'node:fs';

process.on('SIGUSR2', () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
  writeFileSync(process.env.BENCH_HEAP_FILE, String(process.memoryUsage().heapUsed));
});
