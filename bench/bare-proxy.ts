/**
 * The ceiling: a bare pass-through proxy, node:http in front of an undici Pool (the same client and the
 * same pool settings Hapax uses), in its own process. No parsing, no auth, no logging, no metrics: the
 * request body streams up, the response head is copied (content-type, content-length, cache-control) and
 * the body streams back. Whatever Hapax costs beyond this is the gateway's own work.
 *
 * Usage (run.ts forks it): bare-proxy.ts <upstream origin>; reports { ready: port } over IPC.
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const KEEP = ['content-type', 'content-length', 'cache-control'];

export function startBareProxy(origin: string, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  // Same settings as src/providers/http.ts PoolRegistry, so the comparison is about the gateway, not the pool:
  // to an https origin, HTTP/2 with 100 streams per connection (the CA comes from NODE_EXTRA_CA_CERTS).
  const h2 = origin.startsWith('https:');
  const pool = new Pool(origin, { connections: null, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, ...(h2 ? { allowH2: true, pipelining: 100 } : {}) });
  const server = createServer({ keepAliveTimeout: 72_000 }, (req, res) => {
    const headers: Record<string, string> = {};
    for (const name of ['content-type', 'content-length', 'authorization']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    pool.stream(
      { path: req.url as string, method: req.method as 'POST', headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : req },
      ({ statusCode, headers: upstream }) => {
        const out: Record<string, string> = {};
        for (const name of KEEP) {
          const value = upstream[name];
          if (typeof value === 'string') out[name] = value;
        }
        res.writeHead(statusCode, out);
        return res;
      },
      (error) => {
        if (!error) return;
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: String(error.message) } }));
        } else res.destroy(error);
      },
    );
  });
  return new Promise((resolve) => {
    // Hapax's listen backlog (src/server/start.ts), so bursts of connections meet the same queue.
    server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
      resolve({
        port: (server.address() as { port: number }).port,
        close: async () => {
          server.close();
          await pool.close();
        },
      });
    });
  });
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  const { port } = await startBareProxy(process.argv[2] as string);
  process.send?.({ ready: port });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
