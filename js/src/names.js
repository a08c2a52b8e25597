// Close codes and endpoint paths, defined once for the browser client: the mirror of
// jupyter_http_over_ws/wire/names.py (tests/unit/test_names_mirror.py compares the
// two, member by member). Application close codes are 4000 plus the HTTP status that
// says the same thing (4429 is "too many", like 429).

/** Every WebSocket (and polling channel) close code the tunnel sends or reports. */
export const CloseCode = Object.freeze({
  /** The socket was closed on purpose (a client's own close, a polling session's end). */
  NORMAL: 1000,
  /** The server is shutting down: every tunnel socket closes with this. */
  GOING_AWAY: 1001,
  /** Reserved: reported when a close frame carried no code (never sent). */
  NO_STATUS: 1005,
  /** Reserved: reported when a connection ended without a close frame (never sent). */
  ABNORMAL: 1006,
  /** A client message was larger than the server's `max_message_size`. */
  MESSAGE_TOO_BIG: 1009,
  /** The relay failed (its upstream socket went away under it). */
  INTERNAL_ERROR: 1011,
  /** A relay's upstream socket ended without a close frame: 1014, "bad gateway". */
  UPSTREAM_LOST: 1014,
  /** The client's `minVersion` is newer than the server, or a request was invalid. */
  BAD_REQUEST: 4400,
  /** The polling session is gone (expired, or closed by the server). */
  SESSION_GONE: 4404,
  /** Closed for idleness (`idle_timeout`, `polling_idle_timeout`). */
  IDLE: 4408,
  /** A polling channel number already in use. */
  CHANNEL_IN_USE: 4409,
  /** Over `max_sockets_per_user` (sockets, polling sessions and channels together). */
  TOO_MANY_SOCKETS: 4429,
  /** The upstream WebSocket of a relay cannot be reached. */
  BAD_GATEWAY: 4502,
});

// The endpoints, relative to the server's base URL (no leading slash).

/** The tunnel WebSocket. */
export const TUNNEL_PATH = "http_over_websocket";
/** The diagnose WebSocket, answered before authentication. */
export const DIAGNOSE_PATH = TUNNEL_PATH + "/diagnose";
/** Proxied WebSockets: this prefix, then the path of the socket on the server. */
export const PROXIED_WS_PREFIX = TUNNEL_PATH + "/proxied_ws/";
/** The polling transport's endpoints (docs/developers/polling.md). */
export const POLLING_PATH = TUNNEL_PATH + "/polling";
/** Where the server serves this client's modules (index.js and its neighbours). */
export const STATIC_PREFIX = TUNNEL_PATH + "/static/";
