/**
 * The reason Hapax exists, end to end: a steady load runs, the primary drops off the network in the
 * middle of it, and no client sees an error; once the primary is back, traffic returns to it within
 * one health interval, by itself.
 */
import { describe, expect, it } from 'vitest';
import { startTestGateway } from './helpers/gateway.ts';
import { startSwitch } from './helpers/network-switch.ts';
import { sdk } from './helpers/openai.ts';
import { fakeOpenAIs, useStarted } from './helpers/started.ts';

const HEALTH_INTERVAL_MS = 1000;
// Generous for a loaded CI machine: a probe starved past its timeout would send traffic to the backup early.
const HEALTH_TIMEOUT_MS = 500;

interface Outcome {
  at: number;
  provider?: string;
  error?: string;
}

describe('primary killed under steady load', () => {
  const setup = useStarted(fakeOpenAIs('primary', 'backup'))
    .and({ line: ({ primary }) => startSwitch(primary) })
    .and({
      gateway: ({ line, backup }) =>
        startTestGateway(`
providers:
  primary: {type: openai, base_url: "${line.url}", model: gpt-4o-mini, timeout: 2s}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
health_check: {interval: ${HEALTH_INTERVAL_MS}ms, timeout: ${HEALTH_TIMEOUT_MS}ms, failure_threshold: 2}
`),
    });

  it('answers every request while the primary dies and comes back, and returns to the primary within one health interval', async () => {
    const client = sdk(setup.gateway);
    const outcomes: Outcome[] = [];
    const started = performance.now();
    const LOAD_MS = 7000;
    let n = 0;
    // Ten clients in closed loops: as many requests a second as the machine gives (a few hundred here).
    const worker = async () => {
      while (performance.now() - started < LOAD_MS) {
        const content = `request ${n++}`;
        try {
          const { data, response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content }] }).withResponse();
          const provider = response.headers.get('x-hapax-provider') ?? undefined;
          if (data.choices[0].message.content !== `[${provider}] ${content}`) throw new Error(`wrong answer: ${data.choices[0].message.content}`);
          outcomes.push({ at: performance.now() - started, provider });
        } catch (error) {
          outcomes.push({ at: performance.now() - started, error: String(error) });
        }
      }
    };
    const load = Promise.all(Array.from({ length: 10 }, worker));
    await new Promise((r) => setTimeout(r, 1500));
    const killedAt = performance.now() - started;
    setup.line.off(); // resets connections in flight too
    await new Promise((r) => setTimeout(r, 2000));
    const backAt = performance.now() - started;
    setup.line.on();
    await load;

    const errors = outcomes.filter((o) => o.error);
    expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
    expect(outcomes.length).toBeGreaterThan(300);
    expect(outcomes.filter((o) => o.at < killedAt).every((o) => o.provider === 'primary')).toBe(true);
    // While it is down, the backup carries the load.
    expect(outcomes.some((o) => o.at > killedAt && o.at < backAt && o.provider === 'backup')).toBe(true);
    // Back on the network: the next probe (at most one interval later) brings traffic home.
    const firstHome = outcomes.find((o) => o.at > backAt && o.provider === 'primary');
    expect(firstHome, 'traffic never returned to the primary').toBeDefined();
    expect((firstHome as Outcome).at - backAt).toBeLessThanOrEqual(HEALTH_INTERVAL_MS + HEALTH_TIMEOUT_MS + 500);
    const lastSecond = outcomes.filter((o) => o.at > LOAD_MS - 1000);
    expect(lastSecond.every((o) => o.provider === 'primary')).toBe(true);
  }, 30_000);
});
