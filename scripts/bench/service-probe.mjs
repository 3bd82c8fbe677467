// Preloaded into the service by the benchmark (`node --expose-gc --import …`). On SIGUSR2 it reads
// a command from BENCH_PROBE_DIR/command, carries it out, and writes its answer to
// BENCH_PROBE_DIR/answer:
// - `heap`: collects garbage and answers the memory in use, in bytes: the V8 heap and the Buffers
//   outside it (request bodies, sockets' buffers);
// - `profile-start`, then `profile-stop <file> <allocations file>`: a CPU profile of what ran in
//   between, written to <file>, and a sampled profile of what it allocated (garbage included), so
//   a profile shows the steady state under load and not start-up.
// Nothing else changes.
import { writeFileSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

const dir = process.env.BENCH_PROBE_DIR;
let session;

async function run(command) {
  const [verb, argument, allocationsFile] = command.trim().split(/\s+/, 3);
  if (verb === 'heap') {
    for (let i = 0; i < 3; i++) globalThis.gc();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return String(heapUsed + arrayBuffers);
  }
  if (verb === 'profile-start') {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    await session.post('HeapProfiler.startSampling', {
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return 'started';
  }
  if (verb === 'profile-stop') {
    const { profile } = await session.post('Profiler.stop');
    const { profile: allocations } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    writeFileSync(argument, JSON.stringify(profile));
    writeFileSync(allocationsFile, JSON.stringify(allocations));
    return 'written';
  }
  return `unknown command ${verb}`;
}

process.on('SIGUSR2', () => {
  const command = readFileSync(join(dir, 'command'), 'utf8');
  run(command).then(
    (answer) => writeFileSync(join(dir, 'answer'), answer),
    (error) => writeFileSync(join(dir, 'answer'), `error ${error.message}`),
  );
});
