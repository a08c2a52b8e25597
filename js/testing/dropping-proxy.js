// An HTTP proxy in front of a test server that drops WebSocket upgrades, as an old
// reverse proxy does (nginx without `proxy_set_header Upgrade`; tests/support/nginx.py
// is the real one for the browser tests): every request, upgrades included, reaches the
// server as a plain HTTP request without its Upgrade and Connection headers, and the
// server's answer comes back as it is (for an upgrade: the extension's 400).
import { createServer, request } from "node:http";

const HOP_BY_HOP = new Set(["upgrade", "connection", "keep-alive", "proxy-connection", "transfer-encoding"]);

function forward(req, port, onResponse, onError) {
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!HOP_BY_HOP.has(name)) headers[name] = value;
  }
  const upstream = request(
    { host: "127.0.0.1", port, method: req.method, path: req.url, headers },
    onResponse,
  );
  upstream.on("error", onError);
  req.pipe(upstream);
}

/** Start the proxy; resolves with {url, port, requests, close()}. `requests`: "METHOD path status". */
export function startDroppingProxy(upstreamPort, baseUrl = "/") {
  const requests = [];
  const server = createServer((req, res) => {
    forward(
      req,
      upstreamPort,
      (answer) => {
        requests.push(`${req.method} ${req.url} ${answer.statusCode}`);
        const headers = { ...answer.headers };
        for (const name of HOP_BY_HOP) delete headers[name];
        res.writeHead(answer.statusCode, headers);
        answer.pipe(res);
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
  });
  server.on("upgrade", (req, socket) => {
    // The upgrade goes on as a plain request; its answer ends the connection.
    socket.on("error", () => {});
    forward(
      req,
      upstreamPort,
      (answer) => {
        requests.push(`UPGRADE ${req.url} ${answer.statusCode}`);
        const chunks = [];
        answer.on("data", (chunk) => chunks.push(chunk));
        answer.on("end", () => {
          const body = Buffer.concat(chunks);
          socket.end(
            Buffer.concat([
              Buffer.from(
                `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}\r\n` +
                  `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
              ),
              body,
            ]),
          );
        });
      },
      () => socket.destroy(),
    );
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}${baseUrl}`,
        port,
        requests,
        close: () => {
          server.closeAllConnections?.();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}
