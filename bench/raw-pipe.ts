/**
 * The physical bound of any Node proxy on this machine: a TCP listener that pipes every client
 * socket to its own connection to the backing Redis, with no parsing at all.
 * Usage: tsx bench/raw-pipe.ts <listen-port> <redis-port>
 */
import net from 'node:net';

export function startRawPipe(listenPort: number, redisPort: number, host = '127.0.0.1'): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  return new Promise((resolve) => server.listen(listenPort, host, () => resolve(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [listen, redis] = process.argv.slice(2).map(Number);
  await startRawPipe(listen, redis);
  console.log(`raw pipe :${listen} -> :${redis}`);
}
