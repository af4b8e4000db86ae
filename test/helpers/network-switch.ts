/**
 * A TCP relay in front of a fake provider that can be switched off and on: off resets every open
 * connection and refuses new ones, as a provider that drops off the network would. The fakes' own
 * faults apply to chat endpoints only; this covers everything, health probes included.
 */
import net from 'node:net';
import type { FakeProvider } from '../fakes/common.ts';

export async function startSwitch(target: FakeProvider) {
  let on = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!on) return client.resetAndDestroy();
    const upstream = net.connect(target.port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    off() {
      on = false;
      for (const socket of sockets) socket.destroy();
    },
    on() {
      on = true;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
