/**
 * The one encoding of usage rows that the memory and Redis stores share: dimensions joined into one string
 * (a map key, a Redis hash field), and counts added up measure by measure.
 */
import { USAGE_MEASURES, type UsageCounts, type UsageDimensions, type UsageEntry, type UsageRange, type UsageRecord } from './store.ts';

/** Days of usage kept (memory and Redis): reports look back about thirteen months. */
export const USAGE_RETENTION_DAYS = 400;

/** The unit separator cannot occur in key names, route paths, provider names or model labels the config accepts. */
const SEP = '\u001f';
const DIMENSIONS = ['day', 'key', 'route', 'label', 'provider', 'model'] as const;

export const dimensionsId = (entry: UsageDimensions): string => DIMENSIONS.map((name) => entry[name]).join(SEP);

export function dimensionsOf(id: string): UsageDimensions {
  const parts = id.split(SEP);
  return Object.fromEntries(DIMENSIONS.map((name, i) => [name, parts[i] ?? ''])) as unknown as UsageDimensions;
}

export const zeroCounts = (): UsageCounts => Object.fromEntries(USAGE_MEASURES.map((m) => [m, 0])) as UsageCounts;

export function addCounts(into: UsageCounts, delta: Partial<UsageCounts>): void {
  for (const measure of USAGE_MEASURES) into[measure] += delta[measure] ?? 0;
}

export const inRange = (day: string, range: UsageRange | undefined): boolean =>
  (range?.from === undefined || day >= range.from) && (range?.to === undefined || day <= range.to);

export function entryOf(id: string, counts: UsageCounts): UsageEntry {
  return { ...dimensionsOf(id), ...counts };
}

export function countsOf(record: UsageRecord): Partial<UsageCounts> {
  const counts: Partial<UsageCounts> = {};
  for (const measure of USAGE_MEASURES) if (record[measure]) counts[measure] = record[measure];
  return counts;
}
