'use strict';
// nodestack's sample service. No npm dependencies: a fresh checkout runs as is.
// Configuration (environment):
//   PORT         TCP port, 1-65535 (default 3000)
//   HOST         address to bind (default 0.0.0.0)
//   APP_VERSION  reported by /health (default: the git revision of this checkout)
const http = require('node:http');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function readConfig(env) {
  const rawPort = env.PORT === undefined || env.PORT === '' ? '3000' : env.PORT;
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
    throw new Error(`PORT=${rawPort} is invalid: give a TCP port number from 1 to 65535`);
  }
  const host = env.HOST || '0.0.0.0';
  return { port, host, version: env.APP_VERSION || gitRevision() };
}

function gitRevision() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: path.dirname(__filename), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';  // not a git checkout, or git missing: still serve
  }
}

function handler(version, startedAt) {
  return (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    } else if (url.pathname === '/health') {
      const body = { status: 'ok', version, uptime: (Date.now() - startedAt) / 1000 };
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body) + '\n');
    } else if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`Hello from nodeapp ${version}\n`);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  };
}

function main() {
  let config;
  try {
    config = readConfig(process.env);
  } catch (err) {
    console.error(`nodeapp: ${err.message}`);
    process.exit(2);
  }
  const server = http.createServer(handler(config.version, Date.now()));
  server.on('error', (err) => {
    console.error(`nodeapp: cannot listen on ${config.host}:${config.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    console.log(`nodeapp ${config.version} listening on ${config.host}:${config.port}`);
  });
  // systemd stops with SIGTERM: finish in-flight requests, then exit 0.
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
