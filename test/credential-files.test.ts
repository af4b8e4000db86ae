/**
 * The credential files a config points at (src/config/credential-files.ts): a Vertex provider's
 * credentials_file (or GOOGLE_APPLICATION_CREDENTIALS), a Bedrock provider's shared-config profile. Each
 * problem is named by its key path, says what is wrong, and never shows what the file holds.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { credentialFileProblems } from '../src/config/credential-files.ts';
import { parseConfig } from '../src/config/load.ts';
import { makeServiceAccount } from './fakes/vertex.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const account = makeServiceAccount('files-project');
const vertex = (name: string, file?: string) => `  ${name}: {type: vertex, project: p, location: us-east5, model: gemini-2.5-flash${file === undefined ? '' : `, credentials_file: "${file}"`}}\n`;
const configOf = (providers: string) => parseConfig(`providers:\n${providers}`).config;

describe('credential files', () => {
  const setup = useStarted({
    dir: async () => {
      const dir = await tempDir('hapax-credential-files-');
      await writeFile(join(dir.path, 'good.json'), JSON.stringify(account.keyFile));
      await writeFile(join(dir.path, 'wif.json'), JSON.stringify({ type: 'external_account', audience: '//iam.googleapis.com/x', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_url: 'https://sts.googleapis.com/v1/token', credential_source: { file: '/var/run/token' } }));
      await writeFile(join(dir.path, 'broken.json'), `{"type": "service_account", "private_key": "${account.keyFile.private_key.slice(0, 80).replace(/\n/g, '\\n')}`);
      await writeFile(join(dir.path, 'nokey.json'), JSON.stringify({ ...account.keyFile, private_key: '' }));
      await writeFile(join(dir.path, 'other.json'), JSON.stringify({ hello: 'world' }));
      await writeFile(join(dir.path, 'locked.json'), JSON.stringify(account.keyFile));
      await chmod(join(dir.path, 'locked.json'), 0o000);
      await mkdir(join(dir.path, 'aws'));
      await writeFile(join(dir.path, 'aws', 'config'), '[default]\nregion = us-east-1\n\n[profile team]\nregion = eu-west-1\n');
      await writeFile(join(dir.path, 'aws', 'credentials'), '[ci]\naws_access_key_id = AKIAEXAMPLEKEYID\naws_secret_access_key = aws-secret-value\n');
      return dir;
    },
  });
  const at = (file: string) => join(setup.dir.path, file);

  it('accepts readable Google credentials: a service-account key and a workload identity federation config', async () => {
    expect(await credentialFileProblems(configOf(vertex('a', at('good.json')) + vertex('b', at('wif.json'))), {})).toEqual([]);
  });

  it('names a missing, unreadable, broken or foreign credentials_file by its key path, without its contents', async () => {
    const config = configOf(vertex('missing', at('nope.json')) + vertex('dir', setup.dir.path) + vertex('broken', at('broken.json')) + vertex('nokey', at('nokey.json')) + vertex('other', at('other.json')));
    const problems = await credentialFileProblems(config, {});
    expect(problems).toEqual([
      `providers.missing.credentials_file: cannot read ${at('nope.json')}: no such file [ENOENT]`,
      `providers.dir.credentials_file: cannot read ${setup.dir.path}: it is a directory, not a file [EISDIR]`,
      `providers.broken.credentials_file: ${at('broken.json')} is not JSON: expected a service-account key or a workload identity federation config from the Cloud console`,
      `providers.nokey.credentials_file: ${at('nokey.json')} is a service-account key without private_key: download a new key from the Cloud console`,
      expect.stringMatching(/^providers\.other\.credentials_file: .*other\.json is not a Google credentials file: its "type" should be one of service_account, /),
    ]);
    expect(problems.join('\n')).not.toContain('PRIVATE KEY');
  });

  it.skipIf(process.getuid?.() === 0)('says when the gateway user may not read the file', async () => {
    expect(await credentialFileProblems(configOf(vertex('locked', at('locked.json'))), {})).toEqual([`providers.locked.credentials_file: cannot read ${at('locked.json')}: permission denied (the gateway user cannot read it) [EACCES]`]);
  });

  it('checks GOOGLE_APPLICATION_CREDENTIALS for a Vertex provider without a credentials_file', async () => {
    const config = configOf(vertex('adc'));
    expect(await credentialFileProblems(config, {})).toEqual([]);
    expect(await credentialFileProblems(config, { GOOGLE_APPLICATION_CREDENTIALS: at('good.json') })).toEqual([]);
    expect(await credentialFileProblems(config, { GOOGLE_APPLICATION_CREDENTIALS: at('gone.json') })).toEqual([
      `providers.adc: no credentials_file, so GOOGLE_APPLICATION_CREDENTIALS is used, and cannot read ${at('gone.json')}: no such file [ENOENT]`,
    ]);
  });

  it('names a Bedrock profile that is in neither shared AWS file; fixed keys need no profile', async () => {
    const env = { AWS_CONFIG_FILE: at('aws/config'), AWS_SHARED_CREDENTIALS_FILE: at('aws/credentials') };
    const bedrock = (name: string, extra: string) => `  ${name}: {type: bedrock, region: us-east-1, model: amazon.nova-pro-v1:0, ${extra}}\n`;
    const config = configOf(bedrock('team', 'profile: team') + bedrock('ci', 'profile: ci') + bedrock('typo', 'profile: taem') + bedrock('keys', 'profile: taem, aws_access_key_id: AKIAEXAMPLEKEYID, aws_secret_access_key: s'));
    expect(await credentialFileProblems(config, env)).toEqual([`providers.typo.profile: no profile "taem" in ${at('aws/config')} or ${at('aws/credentials')}`]);
  });
});
