/**
 * What `hapax serve` says when it is up: a short banner for a person at a terminal (where to go, where the
 * config came from, the failover order, a request to try), and the warnings a newcomer needs on day one.
 * Machines get the 'hapax listening' JSON line instead (the CLI logs it either way).
 */
import type { HapaxConfig } from '../config/schema.ts';
import { VERSION } from '../version.ts';

export interface BannerFacts {
  url: string;
  /** Where the config came from: a file name or "(built-in default)". */
  source: string;
  config: HapaxConfig;
  /** Providers in failover order, tiers flattened. */
  order: readonly string[];
}

/** The mock provider answers with a canned echo: behind a real provider it hides that provider's failures. */
export function mockInChainWarning(config: HapaxConfig, order: readonly string[]): string | undefined {
  const mocks = order.filter((name) => config.providers[name]?.type === 'mock');
  const real = order.filter((name) => config.providers[name]?.type !== 'mock');
  if (mocks.length === 0 || real.length === 0) return undefined;
  return (
    `the mock provider ${mocks.join(', ')} is in the failover chain (${order.join(' → ')}): when ${real.join(' and ')} cannot answer, ` +
    'clients get its canned echo instead of an error; take it out of provider_preference (or providers) outside of tests'
  );
}

export function banner(facts: BannerFacts): string {
  const { url, source, config, order } = facts;
  const kinds = order.map((name) => `${name} (${config.providers[name]?.type ?? '?'})`);
  const from = source === '(built-in default)' ? 'built-in default (no hapax.yaml here, no --config, no $HAPAX_CONFIG)' : source;
  const auth = config.auth.enabled ? ` -H "Authorization: Bearer $HAPAX_KEY"` : '';
  const body = JSON.stringify({ model: '', messages: [{ role: 'user', content: 'Hello!' }] });
  const lines = [
    `Hapax ${VERSION} is listening on ${url}`,
    `  console    ${url}/console${consoleNote(config)}`,
    `  config     ${from}`,
    `  providers  ${kinds.join(' → ')}  (failover order)`,
    `  try        curl ${url}/v1/chat/completions -H 'content-type: application/json'${auth} -d '${body}'`,
    config.auth.enabled ? '             (auth is on: make a key with hapax keys create --name me)' : undefined,
    `  stop       Ctrl-C (finishes requests in flight first)`,
    '',
  ];
  return lines.filter((line) => line !== undefined).join('\n');
}

function consoleNote(config: HapaxConfig): string {
  if (config.admin.key) return ' (sign in with admin.key)';
  return config.auth.enabled ? ' (off: with auth on it needs admin.key)' : '';
}
