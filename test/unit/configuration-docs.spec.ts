import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const read = (file: string) => readFileSync(resolve(__dirname, '../..', file), 'utf8');

/** The `NAME=` lines: comments around them are prose, not variables. */
function variablesOfEnvExample(text: string): Set<string> {
  return new Set([...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map(([, name]) => name));
}

/** The backquoted names in the first cell of the table's rows; a row may name several. */
function variablesOfConfigurationDoc(text: string): Set<string> {
  const firstCells = text
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((row) => row.split('|')[1]);
  return new Set(firstCells.flatMap((cell) => [...cell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map(([, name]) => name)));
}

describe('Configuration documentation', () => {
  it('should list the same variables in .env.example and docs/configuration.md', () => {
    const inEnvExample = variablesOfEnvExample(read('.env.example'));
    const inDoc = variablesOfConfigurationDoc(read('docs/configuration.md'));
    // Neither parse may come back empty, or the comparison below would pass on nothing.
    expect({ inEnvExample: inEnvExample.size > 0, inDoc: inDoc.size > 0 }).toEqual({ inEnvExample: true, inDoc: true });

    expect({
      'missing from docs/configuration.md': [...inEnvExample].filter((name) => !inDoc.has(name)),
      'missing from .env.example': [...inDoc].filter((name) => !inEnvExample.has(name)),
    }).toEqual({ 'missing from docs/configuration.md': [], 'missing from .env.example': [] });
  });
});
