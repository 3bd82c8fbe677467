/** The window assumed for a model not listed below. */
export const DEFAULT_CONTEXT_TOKENS = 8192;

/** Context windows of well-known models, by name prefix (longest prefix wins). */
const KNOWN_WINDOWS: ReadonlyArray<[prefix: string, tokens: number]> = [
  ['gpt-4.1', 1_047_576],
  ['gpt-5', 400_000],
  ['gpt-4o', 128_000],
  ['gpt-4-turbo', 128_000],
  ['o4-mini', 200_000],
  ['o3', 200_000],
  ['o1', 200_000],
  ['gpt-3.5-turbo', 16_385],
].sort((a, b) => (b[0] as string).length - (a[0] as string).length) as Array<[string, number]>;

const knownEntryOf = (model: string) => KNOWN_WINDOWS.find(([prefix]) => model.startsWith(prefix));

/** The well-known family of `model`: its prefix above (`gpt-4o` for `gpt-4o-mini`); undefined when unknown. */
export function knownModelFamily(model: string): string | undefined {
  return knownEntryOf(model)?.[0];
}

/** The model's window where known, else the default budget. */
export function contextWindowOf(model: string): number {
  return knownEntryOf(model)?.[1] ?? DEFAULT_CONTEXT_TOKENS;
}

/** The context window a request to `model` may fill: LLM_CONTEXT_TOKENS when set. */
export function contextTokensFor({ contextTokens }: { contextTokens?: number }, model: string): number {
  return contextTokens ?? contextWindowOf(model);
}
