// What the page shows, and the settings it gives JupyterLab, when it cannot connect.
import { PageConfig } from "@jupyterlab/coreutils";
import { ServerConnection } from "@jupyterlab/services";

/** Show `message` over the page: JupyterLab itself cannot start without a server. */
export function showProblem(title, message) {
  const box = document.createElement("div");
  box.id = "hows-lab-problem";
  box.setAttribute("role", "alert");
  box.style.cssText =
    "position:fixed;z-index:100000;top:2em;left:50%;transform:translateX(-50%);max-width:40em;" +
    "padding:1em 1.5em;background:#fff;color:#000;border:2px solid #c62828;border-radius:4px;" +
    "font:14px/1.4 sans-serif;white-space:pre-wrap;box-shadow:0 2px 8px rgba(0,0,0,.3)";
  const heading = document.createElement("strong");
  heading.textContent = title;
  box.append(heading, document.createElement("br"), document.createTextNode(message));
  document.body.append(box);
}

/** Settings whose every request and socket fails with `error` (never a direct request). */
export function refusingSettings(error) {
  class RefusedWebSocket {
    constructor() {
      throw error;
    }
  }
  return ServerConnection.makeSettings({
    baseUrl: PageConfig.getBaseUrl(),
    appendToken: false,
    fetch: () => Promise.reject(error),
    WebSocket: RefusedWebSocket,
  });
}
