/**
 * The credential files a config points at, checked on this machine: a Vertex provider's `credentials_file`
 * (or GOOGLE_APPLICATION_CREDENTIALS, which Application Default Credentials read without one) must be a
 * readable Google credentials JSON, and a Bedrock provider's `profile` must be in the shared AWS config or
 * credentials file. `hapax validate` reports each problem by key path; `hapax serve` only warns (the providers
 * read these files at their first request, so a file mounted after start still works).
 *
 * A problem names the file and what is wrong with it, never what it holds (a private key, secret keys).
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseKnownFiles } from '@smithy/core/config';
import { READ_REASONS } from './explain.ts';
import type { HapaxConfig } from './schema.ts';

type ProviderConfig = HapaxConfig['providers'][string];

/** The credential types google-auth-library loads from a file. */
const GOOGLE_TYPES = ['service_account', 'external_account', 'authorized_user', 'impersonated_service_account', 'external_account_authorized_user'];

const shown = (file: string) => (resolve(file) === file ? file : `${file} (${resolve(file)})`);

/** What is wrong with a Google credentials file, or undefined when google-auth-library can load it. */
async function googleFileProblem(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `cannot read ${shown(file)}: ${(code && READ_REASONS[code]) ?? 'unreadable'}${code ? ` [${code}]` : ''}`;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Never the parser's message: it quotes the file, which may hold a private key.
    return `${shown(file)} is not JSON: expected a service-account key or a workload identity federation config from the Cloud console`;
  }
  const key = (json ?? {}) as Record<string, unknown>;
  if (typeof key.type !== 'string' || !GOOGLE_TYPES.includes(key.type)) {
    return `${shown(file)} is not a Google credentials file: its "type" should be one of ${GOOGLE_TYPES.join(', ')}`;
  }
  if (key.type === 'service_account') {
    const missing = ['client_email', 'private_key'].filter((field) => typeof key[field] !== 'string' || key[field] === '');
    if (missing.length > 0) return `${shown(file)} is a service-account key without ${missing.join(' and ')}: download a new key from the Cloud console`;
  }
  return undefined;
}

/** The shared files the AWS SDK reads, as it finds them (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, else ~/.aws). */
function awsFiles(env: NodeJS.ProcessEnv): string {
  const home = env.HOME || homedir();
  return `${env.AWS_CONFIG_FILE || join(home, '.aws', 'config')} or ${env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials')}`;
}

async function providerProblems(name: string, provider: ProviderConfig, env: NodeJS.ProcessEnv): Promise<string[]> {
  const at = `providers.${name}`;
  if (provider.type === 'vertex') {
    if (provider.credentials_file !== undefined) {
      const problem = await googleFileProblem(provider.credentials_file);
      return problem ? [`${at}.credentials_file: ${problem}`] : [];
    }
    const adc = env.GOOGLE_APPLICATION_CREDENTIALS;
    if (adc) {
      const problem = await googleFileProblem(adc);
      // Not a key of the file, but the provider it breaks: named with the variable that points at it.
      return problem ? [`${at}: no credentials_file, so GOOGLE_APPLICATION_CREDENTIALS is used, and ${problem}`] : [];
    }
    return [];
  }
  // A named profile is read only when no fixed keys or API key stand in for the credential chain.
  if (provider.type === 'bedrock' && provider.profile !== undefined && provider.aws_access_key_id === undefined && provider.api_key === undefined) {
    let profiles: Record<string, unknown>;
    try {
      const files = { ...(env.AWS_CONFIG_FILE ? { configFilepath: env.AWS_CONFIG_FILE } : {}), ...(env.AWS_SHARED_CREDENTIALS_FILE ? { filepath: env.AWS_SHARED_CREDENTIALS_FILE } : {}) };
      profiles = await parseKnownFiles({ profile: provider.profile, ignoreCache: true, ...files });
    } catch {
      profiles = {};
    }
    if (!(provider.profile in profiles)) return [`${at}.profile: no profile "${provider.profile}" in ${awsFiles(env)}`];
  }
  return [];
}

/** One line per problem, `key.path: what is wrong`, in the order of the providers. */
export async function credentialFileProblems(config: HapaxConfig, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const all = await Promise.all(Object.entries(config.providers).map(([name, provider]) => providerProblems(name, provider, env)));
  return all.flat();
}
