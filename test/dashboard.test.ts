import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, type Exposition } from './helpers/prometheus.ts';
import { tempDir, useStarted } from './helpers/started.ts';

interface Panel {
  type: string;
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

const root = new URL('..', import.meta.url).pathname;
const dashboard = JSON.parse(await readFile(join(root, 'deploy/grafana/hapax.json'), 'utf8')) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Grafana's variables, replaced by what Prometheus would be sent. */
const substitute = (expr: string) =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replace(/\$\{?(department|provider)\}?/g, '.*');

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, labels, strings or durations. */
function metricNames(expr: string): string[] {
  const bare = substitute(expr)
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names = new Set<string>();
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = bare.slice((match.index ?? 0) + match[0].length);
    if (/^\s*\(/.test(rest) || PROMQL_WORDS.has(match[0].toLowerCase())) continue;
    // Numbers like 1e-9 start with a digit, so they never match; exponents after a digit are skipped here.
    if (/[0-9.]$/.test(bare.slice(0, match.index))) continue;
    names.add(match[0]);
  }
  return [...names];
}

/** The family a sample name belongs to: histogram series add _bucket, _sum and _count. */
function familyOf(name: string, exposition: Exposition): string | undefined {
  if (exposition.types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && ['histogram', 'summary'].includes(exposition.types.get(base) ?? '') ? base : undefined;
}

/** `agg by (a, b) (inner)`: the labels and the inner expression they group. */
function groupings(expr: string): Array<{ labels: string[]; inner: string }> {
  const out: Array<{ labels: string[]; inner: string }> = [];
  for (const match of expr.matchAll(/\bby\s*\(([^)]*)\)\s*\(/g)) {
    let depth = 1;
    let i = (match.index ?? 0) + match[0].length;
    const start = i;
    for (; i < expr.length && depth > 0; i++) depth += expr[i] === '(' ? 1 : expr[i] === ')' ? -1 : 0;
    out.push({ labels: match[1].split(',').map((l) => l.trim()).filter(Boolean), inner: expr.slice(start, i - 1) });
  }
  return out;
}

describe('the Grafana dashboard', () => {
  const setup = useStarted({
    // A config with route labels, so the `department` label exists as it would in production.
    gateway: () =>
      startTestGateway(`
providers:
  mock: {type: mock}
routes:
  - {path: /v1/marketing/completions, handler: completion, metrics_labels: {department: marketing}}
`),
    dir: () => tempDir('hapax-dashboard-'),
  });
  let exposition: Exposition;
  beforeAll(async () => {
    exposition = await scrape(`${setup.gateway.url}/metrics`);
  });

  /** Label names a family can carry: its own (from the registry), `le` for histograms, and the scrape's. */
  const labelsOf = (family: string): Set<string> => {
    const metric = setup.gateway.metrics.registry.getSingleMetric(family) as unknown as { labelNames?: string[] } | undefined;
    const extra = exposition.types.get(family) === 'histogram' ? ['le'] : [];
    return new Set([...(metric?.labelNames ?? []), ...extra, 'instance', 'job']);
  };

  it('is a dashboard with panels that all query the chosen Prometheus', () => {
    expect(dashboard.uid).toBe('hapax');
    expect(panels.length).toBeGreaterThan(20);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'department', 'provider']);
  });

  it('uses only metric names that the real /metrics exposition has', () => {
    const used = new Set<string>();
    for (const { panel, expr } of queries) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) {
        used.add(name);
        expect(familyOf(name, exposition), `${panel}: ${name}`).toBeDefined();
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const [, metric, label] = /^label_values\((\w+),\s*(\w+)\)$/.exec((variable.query as { query: string }).query) ?? [];
      expect(familyOf(metric, exposition), variable.name).toBeDefined();
      expect(labelsOf(metric).has(label), `${variable.name}: ${label}`).toBe(true);
    }
    // The spec's metrics all have a place on the dashboard.
    for (const name of [
      'hapax_http_requests_total',
      'hapax_http_request_duration_seconds_bucket',
      'hapax_http_active_requests',
      'hapax_errors_total',
      'circuit_breaker_state',
      'hapax_health_check_duration_seconds_bucket',
      'hapax_health_check_errors_total',
      'hapax_provider_healthy',
      'hapax_deduplicated_requests_total',
      'hapax_rate_limit_hits_total',
      'hapax_failovers_total',
      'hapax_tokens_total',
      'hapax_cost_usd_total',
      'hapax_gateway_overhead_seconds_bucket',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });

  it('groups and filters only by labels those metrics carry', () => {
    for (const { panel, expr } of queries) {
      for (const { labels, inner } of groupings(expr)) {
        for (const name of metricNames(inner)) {
          const family = familyOf(name, exposition) as string;
          for (const label of labels) expect(labelsOf(family).has(label), `${panel}: ${name} by ${label}`).toBe(true);
        }
      }
      for (const match of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
        const family = familyOf(match[1], exposition) as string;
        for (const label of match[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
          expect(labelsOf(family).has(label[1]), `${panel}: ${match[1]}{${label[1]}}`).toBe(true);
        }
      }
    }
  });

  it('shows latency percentiles, tokens and cost by department, breakers and failovers', () => {
    const all = queries.map((q) => q.expr).join('\n');
    expect(all).toMatch(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(hapax_http_request_duration_seconds_bucket/);
    expect(all).toMatch(/sum by \(department(, type)?\) \(rate\(hapax_tokens_total/);
    expect(all).toMatch(/sum by \(department\) \((rate|increase)\(hapax_cost_usd_total/);
    expect(all).toMatch(/circuit_breaker_state/);
    expect(all).toMatch(/hapax_failovers_total/);
  });

  it('has PromQL that Prometheus parses (promtool check rules)', async () => {
    const rules = queries.map((q, i) => `      - record: hapax:dashboard:${i}\n        expr: ${JSON.stringify(substitute(q.expr))}`).join('\n');
    const file = join(setup.dir.path, 'dashboard-rules.yml');
    await writeFile(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
    const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    if (run.error) throw new Error(`promtool is required (Debian package prometheus): ${run.error.message}`);
    expect(`${run.stdout}${run.stderr}`).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(run.status).toBe(0);
  });

  it('comes with a Prometheus config that scrapes Hapax (promtool check config)', () => {
    const run = spawnSync('promtool', ['check', 'config', join(root, 'deploy/prometheus/prometheus.yml')], { encoding: 'utf8' });
    if (run.error) throw new Error(`promtool is required (Debian package prometheus): ${run.error.message}`);
    expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
  });
});

describe('metricNames', () => {
  it('finds metric names and skips functions, labels, strings, durations and numbers', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le, provider) (rate(hapax_x_bucket{provider=~"$provider"}[$__rate_interval])))')).toEqual(['hapax_x_bucket']);
    expect(metricNames('sum(rate(a_total{status=~"5.."}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9)')).toEqual(['a_total', 'b_total']);
    expect(metricNames('count(circuit_breaker_state == 2) or vector(0)')).toEqual(['circuit_breaker_state']);
  });
});
