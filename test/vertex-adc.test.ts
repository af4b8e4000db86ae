/**
 * Vertex AI with Application Default Credentials and no credentials file: on Google Cloud (Compute Engine,
 * Cloud Run, GKE) the token comes from the metadata server, which the fake plays (GCE_METADATA_HOST points the
 * library at it; this file runs in its own process, so the environment it sets is its own).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeVertex } from './fakes/vertex.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const CLAUDE = 'claude-3-5-haiku@20241022';

describe('Vertex AI with the metadata server', () => {
  const saved = { ...process.env };
  let home: string;
  const setup = useStarted({ vertex: () => startFakeVertex({ name: 'vx', project: 'adc-project', metadataServer: true }) });
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'hapax-adc-'));
    // No key file anywhere the library looks: not the environment, not gcloud's (under HOME).
    delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
    delete process.env.CLOUDSDK_CONFIG;
    process.env.HOME = home;
    process.env.GCE_METADATA_HOST = new URL(setup.vertex.url).host;
  });
  afterAll(async () => {
    process.env = saved;
    await rm(home, { recursive: true, force: true });
  });

  it('answers with a token the metadata server issued', async () => {
    const gateway = await startTestGateway(`providers:\n  vx: {type: vertex, project: adc-project, location: us-east5, base_url: "${setup.vertex.url}", model: "${CLAUDE}"}\nretry: {max_retries: 0}\n`);
    try {
      const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const res = await openai.chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'from the metadata server' }] });
      expect(res.choices[0].message.content).toBe('[vx] from the metadata server');
      const sent = setup.vertex.requests.filter((r) => r.path.endsWith(':rawPredict')).at(-1);
      expect(setup.vertex.issued).toContain(String(sent?.headers.authorization).replace('Bearer ', ''));
      expect(setup.vertex.requests.some((r) => r.path === '/computeMetadata/v1/instance/service-accounts/default/token')).toBe(true);
    } finally {
      await gateway.close();
    }
  });
});
