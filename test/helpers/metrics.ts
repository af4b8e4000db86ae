/** Reading a gateway's /metrics in tests. */

async function scrape(url: string): Promise<string[]> {
  return (await (await fetch(`${url}/metrics`)).text()).split('\n');
}

/** The value of one exact series, e.g. `hapax_cache_hits_total` or `circuit_breaker_state{provider="a"}`. */
export async function metricValue(url: string, series: string): Promise<number | undefined> {
  const line = (await scrape(url)).find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The sum over every series whose line starts with `prefix` (all label sets of a metric). */
export async function metricSum(url: string, prefix: string): Promise<number> {
  return (await scrape(url)).filter((l) => l.startsWith(prefix)).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
