// The server and token the page is for: from its #fragment, from what the login form
// remembered for this tab when the user asked it to, or asked for with a form.
import { WindowResolver } from "@jupyterlab/apputils";
import { PageConfig, URLExt } from "@jupyterlab/coreutils";

/** Where the login form keeps the server and token when the user asks it to (this tab only). */
const REMEMBERED = "jupyter-http-over-ws-lab:server";
/** Where the server and token wait for a move to a new workspace (removed once not needed). */
const MOVING = "jupyter-http-over-ws-lab:moving";

/** `{ server, token }` with the server's URL normalized, or null without a server. */
function serverAndToken(server, token) {
  if (!server) return null;
  return { server: URLExt.normalize(server.endsWith("/") ? server : server + "/"), token: token || "" };
}

/** The server's base URL and token from the page's fragment, or null. */
export function fromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  return serverAndToken(params.get("server"), params.get("token"));
}

/**
 * Take the fragment off the address (and this history entry) at once: the token is not
 * left on show, nor in the history. Until this window has its workspace, `target` (the
 * server and token) waits in the tab's sessionStorage: when another window has the same
 * workspace, JupyterLab's window resolver moves this one to a new workspace by loading
 * the page again at another address, and the page there takes it (`fromTheMove`). Once
 * the window has its workspace, it is removed. The resolver's state is JupyterLab's
 * shared one: the name this window gets is the name JupyterLab's gets.
 */
export function forgetFragmentKeepingTheServerForAMove(target) {
  window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search);
  try {
    window.sessionStorage.setItem(MOVING, JSON.stringify(target));
    const candidate = PageConfig.getOption("workspace") || PageConfig.defaultWorkspace;
    new WindowResolver().resolve(candidate).then(
      () => window.sessionStorage.removeItem(MOVING),
      () => undefined, // moving: the page at the new address takes it
    );
  } catch {
    // No storage for this site (then no window resolution either): nothing to keep.
  }
}

/** The server and token left by the page this tab was moved from, once, or null. */
export function fromTheMove() {
  try {
    const moving = window.sessionStorage.getItem(MOVING);
    window.sessionStorage.removeItem(MOVING);
    const { server, token } = JSON.parse(moving || "{}");
    return serverAndToken(server, token);
  } catch {
    return null;
  }
}

/** What the login form remembered for this tab (sessionStorage), or null. */
export function fromThisTab() {
  try {
    const { server, token } = JSON.parse(window.sessionStorage.getItem(REMEMBERED) || "{}");
    return serverAndToken(server, token);
  } catch {
    return null;
  }
}
/** Forget what the login form remembered for this tab (it did not work). */
export function forgetThisTab() {
  window.sessionStorage.removeItem(REMEMBERED);
}

/**
 * Ask for the server's URL and token (this page names none). Submitting puts them in the
 * fragment and reloads; nothing is sent until then, and nothing is stored unless the
 * user ticks "Remember" (sessionStorage: this tab, until it is closed).
 */
export function askForServer() {
  const form = document.createElement("form");
  form.id = "hows-lab-login";
  form.style.cssText =
    "position:fixed;z-index:100000;top:2em;left:50%;transform:translateX(-50%);width:32em;" +
    "padding:1em 1.5em;background:#fff;color:#000;border:1px solid #888;border-radius:4px;" +
    "font:14px/1.6 sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.3)";
  const title = document.createElement("strong");
  title.textContent = "Which Jupyter server?";
  const field = (name, label, type, placeholder) => {
    const row = document.createElement("label");
    row.style.cssText = "display:block;margin-top:.5em";
    const input = document.createElement("input");
    Object.assign(input, { name, type, placeholder, required: name === "server" });
    input.style.cssText = "display:block;width:100%;box-sizing:border-box";
    row.append(label, input);
    return row;
  };
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.textContent = "Connect";
  submit.style.marginTop = ".75em";
  const remember = document.createElement("label");
  remember.style.cssText = "display:block;margin-top:.5em";
  const box = document.createElement("input");
  Object.assign(box, { name: "remember", type: "checkbox" });
  remember.append(box, " Remember them in this tab until it is closed (a reload connects again)");
  form.append(
    title,
    field("server", "Server URL", "url", "http://127.0.0.1:8888/"),
    field("token", "Token", "password", ""),
    remember,
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams({ server: data.get("server"), token: data.get("token") });
    if (data.get("remember")) {
      const chosen = { server: data.get("server"), token: data.get("token") };
      window.sessionStorage.setItem(REMEMBERED, JSON.stringify(chosen));
    } else {
      window.location.hash = params.toString();
    }
    window.location.reload();
  });
  document.body.append(form);
}
