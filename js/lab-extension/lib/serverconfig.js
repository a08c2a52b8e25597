// Page config that only the server can give: what its server extensions add to its own
// JupyterLab page (jupyter-lsp's page_config_hook: the root as a file: URI, where
// notebooks' virtual documents go). Read from the server's page, through the tunnel.
import { PageConfig } from "@jupyterlab/coreutils";

/** The page config keys taken from the server's own JupyterLab page. */
const FROM_THE_SERVER = ["rootUri", "virtualDocumentsUri"];

/**
 * Set FROM_THE_SERVER from the server's `lab` page (its page config), before the
 * plugins that read them start. Nothing changes when the server has no such page.
 */
export async function adoptServerPageConfig(tunnel) {
  let config;
  try {
    const response = await tunnel.fetch("lab");
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const script = page.getElementById("jupyter-config-data");
    config = script ? JSON.parse(script.textContent) : {};
  } catch (error) {
    console.warn("jupyter-http-over-ws: the server's page config could not be read", error);
    return;
  }
  for (const key of FROM_THE_SERVER) {
    if (typeof config[key] === "string") PageConfig.setOption(key, config[key]);
  }
}
