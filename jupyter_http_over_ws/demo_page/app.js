// The demo page: a frontend on another site that reaches a Jupyter server only through
// the tunnel. The server URL and the token come from the URL's #fragment, which the
// browser never sends to any server. Everything Jupyter-bound goes through
// tunnel.fetch and tunnel.WebSocket; the page itself has no other access to Jupyter.
//
// The page runs code (the browser client) only from the Jupyter server the demo
// command started for it, which the page server names in config.json (its
// Content-Security-Policy says the same to the browser), or, served without that file,
// from its own origin. A #fragment naming any other server, or anything but an
// http(s) URL (data:, javascript:), is refused before anything is loaded.

const $ = (id) => document.getElementById(id);

function settingsFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  let server = params.get("server") || "";
  if (server && !server.endsWith("/")) server += "/";
  // Optional: #...&transports=polling forces the polling fallback (default: WebSocket first).
  const transports = (params.get("transports") || "").split(",").filter(Boolean);
  return { server, token: params.get("token") || "", transports };
}

/** The one server this page may load code from: the demo's, else the page's own origin. */
async function allowedServer() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) {
      const config = await response.json();
      if (typeof config.server === "string" && config.server) return config.server;
    }
  } catch {
    // no config: a page served by something else than the demo command
  }
  return `${location.origin}/`;
}

/** `requested` as a URL string if it is an http(s) URL naming `allowed`; else throws why not. */
function checkServer(requested, allowed) {
  let url;
  try {
    url = new URL(requested);
  } catch {
    throw new Error(`The server in this page's URL is not a URL: ${requested}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(
      `The server in this page's URL must be an http:// or https:// URL, not ${url.protocol} ` +
        "(this page loads code from that server, so it takes only a Jupyter server's URL).",
    );
  }
  const expected = new URL(allowed);
  if (url.href !== expected.href) {
    throw new Error(
      `This page loads the browser client only from the Jupyter server it was started for, ` +
        `${expected.href}, not from ${url.href}. Open the URL \`jupyter http-over-ws demo\` printed.`,
    );
  }
  return expected.href;
}

function showProblem(text) {
  const box = $("problem");
  box.textContent = text;
  box.hidden = false;
}

function setState(state, text) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = text;
}

// ---------------------------------------------------------------------------
// Files: the Contents API through tunnel.fetch.

async function api(tunnel, path, init) {
  const response = await tunnel.fetch(path, init);
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).message || "";
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(`${init?.method || "GET"} ${path}: HTTP ${response.status} ${detail}`.trim());
  }
  return response.json();
}

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

async function showDirectory(tunnel, path) {
  const model = await api(tunnel, `api/contents/${encodePath(path)}?content=1`);
  $("cwd").textContent = "/" + path;
  const list = $("file-list");
  list.replaceChildren();
  const entries = [...model.content].sort(
    (a, b) => (a.type === "directory" ? 0 : 1) - (b.type === "directory" ? 0 : 1) ||
      a.name.localeCompare(b.name),
  );
  if (path) {
    const parent = path.split("/").slice(0, -1).join("/");
    entries.unshift({ name: "..", path: parent, type: "directory" });
  }
  for (const entry of entries) {
    const item = document.createElement("li");
    item.className = entry.type === "directory" ? "dir" : entry.type;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = entry.name;
    button.addEventListener("click", () => {
      const action = entry.type === "directory"
        ? showDirectory(tunnel, entry.path)
        : openFile(tunnel, entry.path);
      action.catch((e) => showProblem(String(e.message || e)));
    });
    item.append(button);
    list.append(item);
  }
  if (!entries.length) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = "(empty)";
    list.append(item);
  }
}

async function openFile(tunnel, path) {
  const model = await api(tunnel, `api/contents/${encodePath(path)}?content=1`);
  let text;
  if (model.type === "notebook") {
    text = model.content.cells
      .map((cell) => `# [${cell.cell_type}]\n${cell.source}`)
      .join("\n\n");
  } else if (model.format === "text") {
    text = model.content;
  } else {
    text = `(binary file, ${model.size ?? "?"} bytes, ${model.mimetype || "unknown type"})`;
  }
  $("viewer-name").textContent = "/" + path;
  $("viewer-text").textContent = text;
  $("viewer").hidden = false;
}

// ---------------------------------------------------------------------------
// A kernel: started with tunnel.fetch, spoken to over tunnel.WebSocket (Jupyter's
// JSON kernel message protocol; no library needed for this much).

function uuid() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
}

class Kernel {
  constructor(tunnel, server) {
    this.tunnel = tunnel;
    this.server = server;
    this.session = uuid();
    this.handlers = new Map();
  }

  async start() {
    $("kernel-state").textContent = "starting…";
    const model = await api(this.tunnel, "api/kernels", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "python3" }),
    });
    this.id = model.id;
    const wsUrl = this.server.replace(/^http/, "ws") +
      `api/kernels/${model.id}/channels?session_id=${this.session}`;
    this.socket = new this.tunnel.WebSocket(wsUrl);
    this.socket.onmessage = (event) => this.receive(event);
    this.socket.onclose = () => {
      $("kernel-state").textContent = "disconnected";
    };
    await new Promise((resolve, reject) => {
      this.socket.onopen = resolve;
      this.socket.onerror = () => reject(new Error("the kernel socket did not open"));
    });
    $("kernel-state").textContent = `${model.name}, idle`;
  }

  receive(event) {
    if (typeof event.data !== "string") return; // binary buffers: not used here
    const msg = JSON.parse(event.data);
    if (msg.msg_type === "status") {
      $("kernel-state").textContent = `python3, ${msg.content.execution_state}`;
    }
    const handler = this.handlers.get(msg.parent_header?.msg_id);
    if (handler) handler(msg);
  }

  execute(code, onMessage) {
    const msgId = uuid();
    return new Promise((resolve) => {
      let replied = false;
      let idle = false;
      this.handlers.set(msgId, (msg) => {
        if (msg.msg_type === "execute_reply") replied = msg;
        else if (msg.msg_type === "status" && msg.content.execution_state === "idle") idle = true;
        else onMessage(msg);
        if (replied && idle) {
          this.handlers.delete(msgId);
          resolve(replied);
        }
      });
      this.socket.send(JSON.stringify({
        header: {
          msg_id: msgId,
          msg_type: "execute_request",
          username: "demo",
          session: this.session,
          date: new Date().toISOString(),
          version: "5.3",
        },
        parent_header: {},
        metadata: {},
        content: {
          code,
          silent: false,
          store_history: true,
          user_expressions: {},
          allow_stdin: false,
          stop_on_error: true,
        },
        channel: "shell",
        buffers: [],
      }));
    });
  }
}

const ANSI = /\u001b\[[0-9;]*m/g;

function renderOutput(msg) {
  const out = $("outputs");
  const c = msg.content;
  const pre = (text, cls) => {
    const el = document.createElement("pre");
    el.className = cls;
    el.textContent = text;
    out.append(el);
  };
  switch (msg.msg_type) {
    case "stream":
      pre(c.text, c.name === "stderr" ? "stream stderr" : "stream");
      break;
    case "execute_result":
    case "display_data": {
      const data = c.data || {};
      if (data["image/png"]) {
        const img = document.createElement("img");
        img.alt = data["text/plain"] || "image output";
        img.src = `data:image/png;base64,${data["image/png"]}`;
        out.append(img);
      } else if (data["text/plain"] !== undefined) {
        pre(data["text/plain"], msg.msg_type === "execute_result" ? "result" : "display");
      }
      break;
    }
    case "error":
      pre(c.traceback.join("\n").replace(ANSI, "") || `${c.ename}: ${c.evalue}`, "error");
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------

async function main() {
  $("page-origin").textContent = location.origin;
  const { server, token, transports } = settingsFromFragment();
  if (!server) {
    setState("failed", "no server");
    showProblem("Open this page with #server=<Jupyter URL>&token=<token> in its URL " +
      "(`jupyter http-over-ws demo` prints one).");
    return;
  }
  let trusted;
  try {
    trusted = checkServer(server, await allowedServer());
  } catch (e) {
    showProblem(e.message);
    setState("failed", "server not allowed");
    return;
  }
  $("server-url").textContent = trusted;
  let client;
  try {
    client = await import(`${trusted}http_over_websocket/static/index.js`);
  } catch (e) {
    setState("failed", "client not loaded");
    showProblem(`Could not load the browser client from ${trusted}: ${e.message || e}.\n` +
      "Is the server running, with jupyter-http-over-ws installed?");
    return;
  }
  let tunnel;
  try {
    tunnel = await client.connect({
      url: trusted,
      token,
      ...(transports.length ? { transports } : {}),
    });
  } catch (e) {
    let text = String(e.message || e);
    try {
      const answer = await client.diagnose({ url: trusted });
      text += `\n\nThe server's diagnose endpoint answered: ${JSON.stringify(answer)}`;
    } catch (d) {
      text += `\n\nThe diagnose endpoint did not answer either: ${d.message || d}`;
    }
    if (!text.includes("jupyter http-over-ws doctor")) {
      text += `\n\nRun: jupyter http-over-ws doctor ${trusted} --origin ${location.origin}`;
    }
    showProblem(text);
    // Last: the state says the explanation is there. e.kind: refused, unreachable, version...
    setState("failed", e.kind || "failed");
    return;
  }
  window.demoTunnel = tunnel; // for the curious, in the devtools console
  setState("connected", "connected");
  $("transport").textContent = tunnel.transport;
  $("version").textContent = tunnel.version;
  tunnel.addEventListener("transportchange", () => {
    $("transport").textContent = tunnel.transport;
    $("version").textContent = tunnel.version;
  });
  tunnel.addEventListener("close", (event) => {
    // The transport dropped and could not be reopened (e.g. the server stopped).
    setState("failed", "disconnected");
    showProblem(String(event.error?.message || "The tunnel closed."));
  });

  showDirectory(tunnel, "").catch((e) => showProblem(String(e.message || e)));

  const kernel = new Kernel(tunnel, trusted);
  const started = kernel.start();
  started.catch((e) => {
    $("kernel-state").textContent = "failed";
    showProblem(String(e.message || e));
  });
  const run = $("run");
  const go = async () => {
    run.disabled = true;
    $("outputs").replaceChildren();
    try {
      await started;
      const reply = await kernel.execute($("code").value, renderOutput);
      $("exec-count").textContent = `[${reply.content.execution_count}] ${reply.content.status}`;
    } catch (e) {
      showProblem(String(e.message || e));
    } finally {
      run.disabled = false;
    }
  };
  run.addEventListener("click", go);
  $("code").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.shiftKey) {
      event.preventDefault();
      if (!run.disabled) go();
    }
  });
  started.then(() => {
    run.disabled = false;
  }, () => {});
}

main();
