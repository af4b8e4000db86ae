/** The live key table: a key the store has just received is accepted at once, and a flood of bad keys costs few store reads. */
import { describe, expect, it } from 'vitest';
import { KeyService } from '../../src/state/key-service.ts';
import { newKeyRecord, type ApiKeyRecord, type NewKeyOptions } from '../../src/state/keys.ts';
import type { KeyStore } from '../../src/state/store.ts';

/** A key store in memory whose reads are slow and counted, like a key file on a busy disk. */
class CountingStore implements KeyStore {
  records: ApiKeyRecord[] = [];
  reads = 0;
  private generation = 0;
  async version(): Promise<string> {
    this.reads++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return String(this.generation);
  }
  async list(): Promise<ApiKeyRecord[]> {
    return [...this.records];
  }
  async create(opts: NewKeyOptions) {
    const made = newKeyRecord(opts);
    this.records.push(made.record);
    this.generation++;
    return made;
  }
  async revoke(): Promise<boolean> {
    return false;
  }
  async update(): Promise<undefined> {
    return undefined;
  }
}

const state = { available: true, policy: 'open' as const };

describe('KeyService.verifyFresh', () => {
  it('accepts a key created after the table was built, without waiting for the poll', async () => {
    const store = new CountingStore();
    const service = new KeyService([], store, state);
    await service.refresh();
    const { key } = await store.create({ name: 'fresh' });
    expect(() => service.verify(key)).toThrow('invalid API key');
    expect((await service.verifyFresh(key)).name).toBe('fresh');
  });

  it('a key written while a look is under way is found by the next look, which later misses share', async () => {
    const store = new CountingStore();
    const service = new KeyService([], store, state);
    await service.refresh();
    const early = service.verifyFresh('hpx_unknown').catch((error: Error) => error.message);
    // The first look has started reading; the key lands now, and a request with it arrives.
    const { key } = await store.create({ name: 'late' });
    const [first, second] = await Promise.all([early, service.verifyFresh(key)]);
    expect(first).toBe('invalid API key');
    expect(second.name).toBe('late');
  });

  it('a flood of unknown keys reads the store a handful of times, not once each', async () => {
    const store = new CountingStore();
    const service = new KeyService([], store, state);
    await service.refresh();
    const before = store.reads;
    const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => service.verifyFresh(`hpx_bad_${i}`)));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(store.reads - before).toBeLessThanOrEqual(2);
  });
});
