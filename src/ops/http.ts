import { createServer, Server } from 'node:http';
import { Metrics } from './metrics';

export interface Probes {
  /** Ready: the stages joined their groups and their dependencies answer. */
  ready(): Promise<boolean>;
  version: string;
}

/** /metrics (Prometheus), /live, /ready and /version on one port. */
export function startHttp(port: number, metrics: Metrics, probes: Probes): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/live') return send(200, 'ok\n');
    if (url === '/version') return send(200, `${JSON.stringify({ version: probes.version })}\n`, 'application/json');
    if (url === '/ready') {
      probes.ready().then((ok) => send(ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n'), () => send(503, 'not ready\n'));
      return undefined;
    }
    if (url === '/metrics') {
      metrics.registry.metrics().then((body) => send(200, body, metrics.registry.contentType), (err: Error) => send(500, err.message));
      return undefined;
    }
    return send(404, 'not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}
