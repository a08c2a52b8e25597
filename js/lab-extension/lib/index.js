// JupyterLab on one origin, its Jupyter server on another, and nothing between them but
// the tunnel: this plugin provides JupyterLab's server connection settings
// (IServerSettings) with the tunnel's `fetch` and `WebSocket`, so every manager JupyterLab
// builds (contents, kernels, sessions, terminals, settings, workspaces, translations,
// events, nbconvert...) talks to the server through `http_over_websocket`. A second
// plugin provides the server's default drive (IDefaultDrive), whose download URLs (what
// JupyterLab loads by URL from `files/`) go through the tunnel too.
//
// The page (served by `jupyter http-over-ws lab`, see docs/users/jupyterlab.md) disables
// JupyterLab's own providers, `@jupyterlab/services-extension:server-settings` and
// `:default-drive`, in its page config, and names the server and token in its fragment
// (`#server=URL&token=T`), which the browser never sends anywhere; without one, the page
// asks for them. The browser client is imported from the server itself, so it always
// matches the server's extension.
//
// Before anything else it makes one plain request to the server: where the browser gates
// a public page's requests to this machine or a private network (Chrome's Local Network
// Access), that request is what asks the user, and when it fails the permission's state
// tells "permission denied" from "server down" (the tunnel's own explanation covers the
// rest: origin not allowed, wrong token, a proxy dropping upgrades).
//
// JupyterLab awaits a plugin's asynchronous `activate`, and builds its ServiceManager
// from these settings before the application exists. A provider that failed would be
// replaced, silently, by the default settings (requests straight to the server): so this
// one never fails; it shows what went wrong and returns settings that refuse everything.
//
// The page is the same file at every address: the workspace and the file to open are read
// from its path (address.js) before JupyterLab's resolvers ask for them.
//
// The parts: login.js (the server and token: fragment, remembered, or asked for),
// reach.js (the first request, and Local Network Access), problem.js (what is shown, and
// the refusing settings, when the tunnel cannot be had), byurl.js (what JupyterLab loads
// by URL rather than through the settings' fetch, and the page's Service Worker),
// serverconfig.js (page config only the server can give, from its own page).
import { URLExt } from "@jupyterlab/coreutils";
import { IDefaultDrive, IServerSettings, ServerConnection } from "@jupyterlab/services";

import {
  answerTheServiceWorker,
  DriveThroughTheTunnel,
  downloadsThroughTheServiceWorker,
  downloadsThroughTheTunnel,
  serviceWorkerControls,
  themesFromThePage,
  withKernelspecLogos,
} from "./byurl.js";
import { adoptPathPageConfig } from "./address.js";
import {
  askForServer,
  forgetFragmentKeepingTheServerForAMove,
  forgetThisTab,
  fromFragment,
  fromTheMove,
  fromThisTab,
} from "./login.js";
import { refusingSettings, showProblem } from "./problem.js";
import { firstReach } from "./reach.js";
import { adoptServerPageConfig } from "./serverconfig.js";

async function activate() {
  adoptPathPageConfig();
  const named = fromFragment() || fromTheMove();
  if (named !== null) forgetFragmentKeepingTheServerForAMove(named);
  const target = named || fromThisTab();
  if (target === null) {
    askForServer();
    return refusingSettings(new Error("This page does not name a Jupyter server yet."));
  }
  const unreachable = await firstReach(target.server);
  if (unreachable !== null) {
    // What failed is not worth remembering: a reload asks again.
    forgetThisTab();
    showProblem(...unreachable);
    return refusingSettings(new Error(unreachable.join(": ")));
  }
  let tunnel;
  try {
    const client = await import(
      /* webpackIgnore: true */ URLExt.join(target.server, "http_over_websocket/static/index.js")
    );
    tunnel = await client.connect({ url: target.server, token: target.token });
  } catch (error) {
    forgetThisTab();
    showProblem(
      `Cannot reach the Jupyter server at ${target.server} through the tunnel`,
      error.name === "TypeError" && /import/i.test(error.message)
        ? "The server did not answer, or does not have jupyter-http-over-ws: " + error.message
        : error.message,
    );
    return refusingSettings(error);
  }
  await adoptServerPageConfig(tunnel);
  themesFromThePage();
  answerTheServiceWorker(tunnel);
  downloadUrl = (await serviceWorkerControls())
    ? downloadsThroughTheServiceWorker(tunnel)
    : downloadsThroughTheTunnel(tunnel);
  window.httpOverWsTunnel = tunnel;
  return ServerConnection.makeSettings({
    baseUrl: target.server,
    wsUrl: target.server.replace(/^http/, "ws"),
    // The tunnel's socket is authenticated already: no token in any socket's URL.
    appendToken: false,
    token: target.token,
    fetch: withKernelspecLogos(tunnel),
    WebSocket: tunnel.WebSocket,
    Request,
    Headers,
  });
}

/**
 * How the default drive makes download URLs: set once the tunnel is had (the drive
 * plugin requires the settings, so before the drive exists); null without a tunnel.
 */
let downloadUrl = null;

const serverSettings = {
  id: "jupyter-http-over-ws-lab:server-settings",
  description: "Server connection settings whose fetch and WebSocket go through the tunnel.",
  autoStart: true,
  provides: IServerSettings,
  activate,
};

const defaultDrive = {
  id: "jupyter-http-over-ws-lab:default-drive",
  description: "The server's drive, whose download URLs go through the tunnel.",
  autoStart: true,
  provides: IDefaultDrive,
  requires: [IServerSettings],
  activate: (_, settings) => new DriveThroughTheTunnel({ serverSettings: settings }, downloadUrl),
};

export default [serverSettings, defaultDrive];
