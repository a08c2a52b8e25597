// Starts a real Jupyter server with the extension for the node integration tests.
//
// It runs `$PYTHON -m jupyter_server` (PYTHON defaults to "python3": the virtualenv's
// when one is active, as in .ci/run) in a temporary home, on a free port, with a
// token, and stops it afterwards.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start a server; resolves with {url, token, port, root, log(), stop()}.
 * `config` is a list of extra command-line options.
 */
export async function startServer({ token = "js-test-token", baseUrl = "/", config = [] } = {}) {
  const home = mkdtempSync(join(tmpdir(), "hows-js-"));
  const root = join(home, "root");
  mkdirSync(root);
  const port = await freePort();
  const python = process.env.PYTHON || "python3";
  const args = [
    "-m", "jupyter_server",
    "--no-browser",
    "--allow-root",
    `--port=${port}`,
    "--ip=127.0.0.1",
    `--ServerApp.token=${token}`,
    `--ServerApp.base_url=${baseUrl}`,
    `--ServerApp.root_dir=${root}`,
    "--ServerApp.jpserver_extensions={\"jupyter_http_over_ws\": True, \"hows_echo\": True}",
    "--ServerApp.port_retries=0",
    ...config,
  ];
  const logPath = join(home, "server.log");
  const { openSync } = await import("node:fs");
  const fd = openSync(logPath, "w");
  const child = spawn(python, args, {
    stdio: ["ignore", fd, fd],
    env: {
      ...process.env,
      HOME: home,
      JUPYTER_CONFIG_DIR: join(home, "config"),
      JUPYTER_DATA_DIR: join(home, "data"),
      JUPYTER_RUNTIME_DIR: join(home, "runtime"),
      IPYTHONDIR: join(home, "ipython"),
      JUPYTER_PLATFORM_DIRS: "1",
      PYTHONUNBUFFERED: "1",
      // hows_echo.py: a test-only extension that echoes request bodies byte for byte.
      PYTHONPATH: [here, process.env.PYTHONPATH].filter(Boolean).join(":"),
    },
  });
  let exited = null;
  child.on("exit", (code) => {
    exited = code;
  });
  const url = `http://127.0.0.1:${port}${baseUrl}`;
  const log = () => readFileSync(logPath, "utf8");
  const deadline = Date.now() + 60000;
  for (;;) {
    if (exited !== null) throw new Error(`jupyter server exited with ${exited}:\n${log().slice(-3000)}`);
    try {
      const response = await fetch(`${url}api/status`, { headers: { Authorization: `token ${token}` } });
      if (response.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`jupyter server did not start within 60 s:\n${log().slice(-3000)}`);
    }
    await sleep(200);
  }
  return {
    url,
    token,
    port,
    root,
    log,
    async stop() {
      if (exited === null) {
        child.kill("SIGTERM");
        for (let i = 0; i < 100 && exited === null; i++) await sleep(100);
        if (exited === null) child.kill("SIGKILL");
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}
