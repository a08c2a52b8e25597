// Entry bundled by esbuild: exposes an unmodified @jupyterlab/services to the test page.
export {
  ContentsManager,
  KernelManager,
  ServerConnection,
  SessionManager,
} from "@jupyterlab/services";
