// jupyter-http-over-ws browser client: HTTP requests and WebSockets to a Jupyter
// server through one tunnel, for pages on another origin. Dependency-free ES modules,
// served by the extension at {base_url}http_over_websocket/static/index.js.
//
//   import { connect } from "http://127.0.0.1:8888/http_over_websocket/static/index.js";
//   const tunnel = await connect({ url: "http://127.0.0.1:8888/", token });
//   const files = await (await tunnel.fetch("api/contents")).json();
//
// See docs/users/js-api.md.

export { connect, Tunnel } from "./tunnel.js";
export { diagnose } from "./diagnose.js";
export { TunnelError } from "./errors.js";
