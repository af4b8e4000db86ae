// Runs under Bun (not Node): requests over HTTP/3 with Bun's own client, `fetch(url, {protocol: 'http3'})`.
// Usage: bun bun-h3-client.mjs BASE_URL 'JSON array of steps'. Prints one JSON line per step.
// A step: {method, path, headers, body | bigBody: {prefix, fill, count, suffix}, abortAfterFirstChunk, hangAfterFirstChunk}.
// Bun's HTTP/3 client does not take a custom CA (it answers HTTP3Unsupported), hence rejectUnauthorized: false.
const [base, plan] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

for (const step of JSON.parse(plan)) {
  const controller = new AbortController();
  const started = performance.now();
  const body = step.bigBody ? step.bigBody.prefix + step.bigBody.fill.repeat(step.bigBody.count) + step.bigBody.suffix : step.body;
  try {
    const response = await fetch(base + step.path, {
      method: step.method ?? 'GET',
      headers: step.headers,
      body,
      protocol: 'http3',
      tls: { rejectUnauthorized: false },
      signal: controller.signal,
    });
    const chunks = [];
    const parts = [];
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push({ t: Math.round(performance.now() - started), bytes: value.length });
      parts.push(decoder.decode(value, { stream: true }));
      if (chunks.length === 1 && step.hangAfterFirstChunk) {
        print({ first: true, status: response.status });
        await new Promise(() => {}); // the test kills this process: a client that vanishes
      }
      if (chunks.length === 1 && step.abortAfterFirstChunk) {
        controller.abort();
        break;
      }
    }
    const text = parts.join('');
    print({
      status: response.status,
      headers: Object.fromEntries(response.headers),
      bodyLength: text.length,
      body: text.length > 200_000 ? text.slice(0, 200_000) : text,
      chunks,
    });
  } catch (error) {
    print({ error: String(error?.code ?? error?.name ?? error), message: String(error?.message ?? error) });
  }
}
