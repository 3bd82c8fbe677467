// Starting the built service (`npm run build` first) from the measurement scripts, as a user would
// run it: `node dist/main.js` with `npm start`'s Node flags, on a free loopback port, answering once
// its start-up line is out.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const MAIN_JS = resolve(import.meta.dirname, '../../dist/main.js');

/** The Node flags `npm start` gives the service (package.json's start script), so what is measured is what ships. */
export const NODE_FLAGS = (() => {
  const { start } = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')).scripts;
  // Flags whose value is a path (--env-file, --import …) would resolve against each script's folder.
  const match = /^node((?:\s+--[\w-]+(?:=[^\s/.][^\s/]*)?)*)\s+dist\/main\.js$/.exec(start.trim());
  if (!match)
    throw new Error(
      `package.json's start script is not "node [--flag[=value] …] dist/main.js" (no path values): ${start}`,
    );
  return match[1].split(/\s+/).filter(Boolean);
})();

/** Our environment without anything that would pick an LLM, storage, access or limits for the service. */
export function serviceEnv(extra) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(OPENAI_|LLM_|DATABASE_URL$|PORT$|HOST$|API_KEYS|REDIS_URL$|RATE_LIMIT|LOG_|AUTO_TITLE$)/.test(key)) {
      delete env[key];
    }
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

/**
 * Starts the service with `env` (over {@link serviceEnv}: in memory, offline, JSON logs) and
 * resolves with its base URL once it listens; `stop()` sends SIGTERM and fails on an unclean exit.
 */
export async function startBuiltService(env = {}) {
  const child = spawn(process.execPath, [...NODE_FLAGS, MAIN_JS], {
    env: serviceEnv({ PORT: '0', HOST: '127.0.0.1', LOG_FORMAT: 'json', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const base = await new Promise((resolveBase, reject) => {
    const onData = (chunk) => {
      output = (output + chunk).slice(-20_000);
      const match = /listening on (http:\/\/[^\s"]+)/.exec(output);
      if (match) resolveBase(match[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the service exited (${code}) before listening:\n${output}`)));
  });
  return {
    base,
    async stop() {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      if (code !== 0) throw new Error(`the service exited with ${code}:\n${output.slice(-2000)}`);
    },
  };
}
