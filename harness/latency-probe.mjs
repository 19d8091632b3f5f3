#!/usr/bin/env node
/**
 * A latency probe in its own process (so the load generators' work never delays it): one
 * connection, one request at a time, alternating `SET probe:key <16 bytes>` and `GET probe:key`,
 * for --ms milliseconds; connects as soon as the port opens (retrying). Prints one JSON object:
 * { t: [epoch ms each reply arrived], lat: [µs], op: ['S'|'G', ...] }.
 *
 *   node harness/latency-probe.mjs --port 6380 --ms 5000
 */
import net from 'node:net';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};
const port = arg('port', 6379);
const ms = arg('ms', 5000);
const SET = Buffer.from('*3\r\n$3\r\nSET\r\n$9\r\nprobe:key\r\n$16\r\n0123456789abcdef\r\n');
const GET = Buffer.from('*2\r\n$3\r\nGET\r\n$9\r\nprobe:key\r\n');
const t = [];
const lat = [];
const op = [];

function connect() {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', () => setTimeout(() => connect().then(resolve), 20));
  });
}

const sock = await connect();
sock.setNoDelay(true);
const end = performance.now() + ms;
let buf = Buffer.alloc(0);
let started = 0n;
let isSet = true;
const send = () => {
  if (performance.now() >= end) {
    sock.end();
    process.stdout.write(JSON.stringify({ t, lat, op }));
    return;
  }
  started = process.hrtime.bigint();
  sock.write(isSet ? SET : GET);
};
// A reply is complete when it is +OK\r\n, $-1\r\n or $16\r\n<16 bytes>\r\n (or an error line).
const complete = (b) => {
  if (b.length < 5) return false;
  if (b[0] === 0x2b || b[0] === 0x2d) return b.indexOf('\r\n') >= 0;
  if (b[0] === 0x24) {
    const nl = b.indexOf('\r\n');
    if (nl < 0) return false;
    const len = Number(b.toString('latin1', 1, nl));
    return len < 0 || b.length >= nl + 2 + len + 2;
  }
  return true;
};
sock.on('data', (d) => {
  buf = buf.length ? Buffer.concat([buf, d]) : d;
  if (!complete(buf)) return;
  buf = Buffer.alloc(0);
  lat.push(Number(process.hrtime.bigint() - started) / 1000);
  t.push(performance.timeOrigin + performance.now());
  op.push(isSet ? 'S' : 'G');
  isSet = !isSet;
  send();
});
sock.on('error', (e) => {
  console.error(e.message);
  process.exit(1);
});
send();
