/**
 * A real redis-server for tests, on a free loopback port, without persistence. The test starts it,
 * may kill it (a crash) or freeze it (a hung Redis) mid-test, restart it on the same port, and stops it
 * by its PID. A missing redis-server binary fails the test: these tests are never skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  port: number;
  url: string;
  /** PID of the running redis-server, if one is running. */
  readonly pid: number | undefined;
  /** SIGKILL, as a crash would: no goodbye to clients. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: the connection stays open but nothing answers. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
  /** Client connections other than the one asking (CLIENT LIST). */
  otherClients(): Promise<number>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One inline command over a raw socket; the reply as text once `complete` says so, or undefined. */
function command(port: number, line: string, complete: (reply: string) => boolean): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (text: string | undefined) => {
      socket.destroy();
      resolve(text);
    };
    socket.setTimeout(500, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (data) => {
      reply += data.toString();
      if (complete(reply)) done(reply);
    });
  });
}

const ping = async (port: number): Promise<boolean> => (await command(port, 'PING', (r) => r.includes('\r\n')))?.startsWith('+PONG') ?? false;

/** A bulk string reply ($<length>\r\n<data>\r\n) has fully arrived. */
function bulkComplete(reply: string): boolean {
  const header = /^\$(\d+)\r\n/.exec(reply);
  return header !== null && Buffer.byteLength(reply) >= header[0].length + Number(header[1]) + 2;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'hapax-redis-'));
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    child = proc;
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (error) => reject(new Error(`redis-server could not be started (is it installed?): ${error.message}`)));
      proc.once('exit', (code, signal) => reject(new Error(`redis-server exited at start (code ${code}, signal ${signal})`)));
    });
    failed.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([ping(port), failed]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    process.kill(proc.pid, 'SIGCONT'); // a frozen server must be able to act on the signal
    process.kill(proc.pid, signal);
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    kill: () => end('SIGKILL'),
    restart: launch,
    freeze: () => child?.pid && process.kill(child.pid, 'SIGSTOP'),
    thaw: () => child?.pid && process.kill(child.pid, 'SIGCONT'),
    async otherClients() {
      const reply = await command(port, 'CLIENT LIST', bulkComplete);
      if (reply === undefined) throw new Error('CLIENT LIST got no answer');
      return reply.split('\n').filter((line) => line.includes('addr=')).length - 1;
    },
    async stop() {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
