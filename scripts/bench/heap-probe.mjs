// Preloaded into the service by the benchmark (`node --expose-gc --import …`): on SIGUSR2 it
// collects garbage and writes the memory in use, in bytes, to BENCH_HEAP_FILE: the V8 heap and the
// Buffers outside it (the OpenAI provider keeps request bodies there). Nothing else changes.
import { writeFileSync } from 'node:fs';

process.on('SIGUSR2', () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  writeFileSync(process.env.BENCH_HEAP_FILE, String(heapUsed + arrayBuffers));
});
