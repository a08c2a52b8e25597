// `npm test`: node's test runner over test/, with a global WebSocket on every node
// version we support (node 22 has one; node 20 needs --experimental-websocket).
import { spawnSync } from "node:child_process";

const flags = typeof WebSocket === "function" ? [] : ["--experimental-websocket"];
const { status, signal } = spawnSync(process.execPath, [...flags, "--test", ...process.argv.slice(2), "test/"], {
  stdio: "inherit",
});
process.exit(signal ? 1 : status);
