/**
 * Usage reports (GET /admin/usage, `hapax usage`): the stored day rows added up by the dimensions asked
 * for, as JSON rows, CSV or an aligned text table.
 */
import { USAGE_MEASURES, type UsageEntry, type UsageRange } from '../state/store.ts';

export const GROUP_BY = ['key', 'label', 'route', 'provider', 'model', 'day'] as const;
export type GroupBy = (typeof GROUP_BY)[number];
export const REPORT_FORMATS = ['json', 'csv'] as const;

const NANO_PER_USD = 1e9;

export interface ReportQuery {
  groupBy: GroupBy[];
  range: UsageRange;
  format: (typeof REPORT_FORMATS)[number];
  /** Only this key's rows. */
  key?: string;
}

/** A query parameter that cannot be used: `field` names it. */
export class ReportQueryError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function day(field: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!DAY.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) throw new ReportQueryError(field, `expected a day as YYYY-MM-DD, got ${JSON.stringify(value)}`);
  return value;
}

/** The report asked for by query parameters (group_by, from, to, format, key); refuses what it cannot do. */
export function parseReportQuery(query: Readonly<Record<string, string | undefined>>): ReportQuery {
  const known = new Set(['group_by', 'from', 'to', 'format', 'key']);
  for (const name of Object.keys(query)) if (!known.has(name)) throw new ReportQueryError(name, `unknown parameter; use ${[...known].join(', ')}`);
  const groupBy = (query.group_by ?? 'key')
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  for (const name of groupBy) {
    if (!(GROUP_BY as readonly string[]).includes(name)) throw new ReportQueryError('group_by', `unknown dimension ${JSON.stringify(name)}; use any of ${GROUP_BY.join(', ')}`);
  }
  const format = query.format ?? 'json';
  if (!(REPORT_FORMATS as readonly string[]).includes(format)) throw new ReportQueryError('format', `expected ${REPORT_FORMATS.join(' or ')}`);
  const range = { from: day('from', query.from), to: day('to', query.to) };
  if (range.from && range.to && range.from > range.to) throw new ReportQueryError('from', `${range.from} is after to=${range.to}`);
  return { groupBy: [...new Set(groupBy)] as GroupBy[], range, format: format as ReportQuery['format'], key: query.key || undefined };
}

export type ReportRow = Partial<Record<GroupBy, string>> & {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  cost_usd: number;
  /** Requests with tokens but no price: their cost_usd is missing, not zero. */
  unpriced_requests: number;
};

/** Adds up the day rows by `groupBy`, sorted by those dimensions. */
export function groupUsage(entries: readonly UsageEntry[], query: Pick<ReportQuery, 'groupBy' | 'key'>): ReportRow[] {
  const groups = new Map<string, { dims: Partial<Record<GroupBy, string>>; sums: Record<string, number> }>();
  for (const entry of entries) {
    if (query.key !== undefined && entry.key !== query.key) continue;
    const dims = Object.fromEntries(query.groupBy.map((name) => [name, entry[name]])) as Partial<Record<GroupBy, string>>;
    const id = JSON.stringify(query.groupBy.map((name) => entry[name]));
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { dims, sums: Object.fromEntries(USAGE_MEASURES.map((m) => [m, 0])) }));
    for (const measure of USAGE_MEASURES) group.sums[measure] += entry[measure];
  }
  const rows = [...groups.values()].map(({ dims, sums }): ReportRow => ({
    ...dims,
    requests: sums.requests,
    input_tokens: sums.input_tokens,
    output_tokens: sums.output_tokens,
    cache_read_tokens: sums.cache_read_tokens,
    cache_write_tokens: sums.cache_write_tokens,
    reasoning_tokens: sums.reasoning_tokens,
    total_tokens: sums.input_tokens + sums.output_tokens,
    // Kept in nano-dollars so that adding thousands of requests up loses nothing; shown in dollars.
    cost_usd: sums.cost_nano_usd / NANO_PER_USD,
    unpriced_requests: sums.unpriced_requests,
  }));
  const compare = (a: ReportRow, b: ReportRow) => {
    for (const name of query.groupBy) {
      const order = (a[name] ?? '').localeCompare(b[name] ?? '');
      if (order !== 0) return order;
    }
    return 0;
  };
  return rows.sort(compare);
}

export const reportColumns = (groupBy: readonly GroupBy[]): string[] => [
  ...groupBy,
  'requests',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'reasoning_tokens',
  'total_tokens',
  'cost_usd',
  'unpriced_requests',
];

const cell = (value: unknown): string => (value === undefined || value === null ? '' : String(value));

/** RFC 4180 CSV: a field with a comma, quote or line break is quoted, quotes doubled. */
export function toCsv(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const quote = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  return [columns.join(','), ...rows.map((row) => columns.map((c) => quote(cell(row[c]))).join(','))].join('\r\n') + '\r\n';
}

/** An aligned text table: numbers to the right, text to the left; '-' for an empty dimension. */
export function toTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const shown = (row: Record<string, unknown>, c: string) => {
    const value = row[c];
    if (c === 'cost_usd' && typeof value === 'number') return `$${value.toFixed(6)}`;
    return cell(value) || '-';
  };
  const lines = [columns.map((c) => c.toUpperCase()), ...rows.map((row) => columns.map((c) => shown(row, c)))];
  const widths = columns.map((_, i) => Math.max(...lines.map((line) => line[i].length)));
  const numeric = columns.map((c) => !(GROUP_BY as readonly string[]).includes(c));
  return `${lines.map((line) => line.map((text, i) => (numeric[i] ? text.padStart(widths[i]) : text.padEnd(widths[i]))).join('  ').trimEnd()).join('\n')}\n`;
}
