// A TCP proxy that delays every chunk by half a round trip in each direction: the SDK client
// seen from `RTT_MS` away, for benchmarks only (this kernel has no netem). Run as a child:
//   node lib/latency-proxy.mjs <upstream port> <round trip ms>
// It prints `listening <port>` once it accepts connections. Chunks keep their order (timers of
// one duration fire in the order they were set) and nothing is buffered beyond the delay.

import net from 'node:net';

const [upstream, rtt] = process.argv.slice(2).map(Number);
const half = rtt / 2;

const delayed = (from, to) => {
  from.on('data', (chunk) => setTimeout(() => to.write(chunk), half));
  from.on('end', () => setTimeout(() => to.end(), half));
  from.on('error', () => to.destroy());
};

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const up = net.connect({ host: '127.0.0.1', port: upstream });
  up.setNoDelay(true);
  delayed(client, up);
  delayed(up, client);
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
