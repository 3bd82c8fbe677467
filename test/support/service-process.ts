import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { resolve } from 'node:path';

export const MAIN_JS = resolve(__dirname, '../../dist/main.js');
/** `npm run migrate` without its build. */
export const MIGRATE_JS = resolve(__dirname, '../../dist/migrate.js');

export interface ServiceProcess {
  child: ChildProcess;
  baseUrl: string;
  startupLine: string;
  /** Everything the service printed so far, stdout and stderr. */
  output(): string;
  /** Resolves once the service has printed `text`, on stdout or stderr. */
  waitForOutput(text: string): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL: the service dies at once, as in a crash; none of its shutdown runs. */
  kill(): Promise<void>;
}

/** Environment for a child service: this process's, minus anything that would pick a real LLM. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const key of Object.keys(base)) if (/^(OPENAI_|LLM_|DATABASE_URL|PORT$|HOST$)/.test(key)) delete base[key];
  return { ...base, NO_COLOR: '1', ...env };
}

/** Starts the built service (`npm run build` first) on a free port and waits for its start-up line. */
export async function startService(env: Record<string, string> = {}, cwd?: string): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd,
    env: childEnv({ PORT: '0', HOST: '127.0.0.1', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const printed = new EventEmitter();
  const startupLine = await new Promise<string>((resolvePromise, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      printed.emit('data');
      const line = output.split('\n').find((l) => l.includes('listening on'));
      if (line) resolvePromise(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`service exited with ${code}: ${output}`)));
  });
  const baseUrl = /listening on (http:\/\/\S+)/.exec(startupLine)![1];
  return {
    child,
    baseUrl,
    startupLine,
    output: () => output,
    waitForOutput: (text) =>
      new Promise<void>((resolvePromise) => {
        const check = () => {
          if (!output.includes(text)) return;
          printed.off('data', check);
          resolvePromise();
        };
        printed.on('data', check);
        check();
      }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      // A service that does not stop in time must not keep the test run alive.
      const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(deadline);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
}

/** Runs the built service until it exits by itself; for start-up failures. */
export function runServiceToExit(
  env: Record<string, string>,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runToExit(MAIN_JS, env, cwd);
}

/** Runs a built script (MAIN_JS, MIGRATE_JS) until it exits by itself. */
export async function runToExit(
  script: string,
  env: Record<string, string>,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [script], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
