// What the page's path says. A Jupyter server renders JupyterLab's page for each address:
// `/lab/workspaces/<name>` names the workspace, `/tree/<path>` the file to open
// (jupyterlab_server's LabHandler puts them in the page config). This page is one static
// file for every address, so the plugin reads them from the path itself, before
// JupyterLab's window resolver and tree resolver ask for them.
import { PageConfig, URLExt } from "@jupyterlab/coreutils";

/** jupyterlab_server's address of a page: an optional workspace, then an optional file. */
const PAGE_PATH = /^(?:\/workspaces\/([a-zA-Z0-9_-]+))?(?:\/tree\/(.*))?$/;

/** `{ workspace, treePath }` named by `pathname` under the app's URL (`""` where none). */
export function pageConfigOfPath(pathname, appUrl) {
  // A trailing slash is the same page (the server redirects it away).
  const path = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  if (path !== appUrl && !path.startsWith(appUrl + "/")) return { workspace: "", treePath: "" };
  const match = PAGE_PATH.exec(path.slice(appUrl.length));
  if (match === null) return { workspace: "", treePath: "" };
  return { workspace: match[1] || "", treePath: fileOfTreePath(match[2] || "") };
}

/**
 * The file a `/tree/` path names, decoded as the server decodes it (every valid escape;
 * a `%` that starts none is left as it is). None (`""`) where a segment is `.` or `..`
 * once decoded (`..%2F` in a crafted link): the file to open is under the server's root.
 */
function fileOfTreePath(encoded) {
  const path = encoded.replace(/(?:%[0-9A-Fa-f]{2})+/g, (escapes) => {
    try {
      return decodeURIComponent(escapes);
    } catch {
      return escapes; // bytes that are not UTF-8: as they are
    }
  });
  return path.split("/").some((segment) => segment === "." || segment === "..") ? "" : path;
}

/** Put the workspace and file this page's path names into the page config. */
export function adoptPathPageConfig() {
  const appUrl = URLExt.join(new URL(PageConfig.getBaseUrl()).pathname, PageConfig.getOption("appUrl"));
  const { workspace, treePath } = pageConfigOfPath(window.location.pathname, appUrl);
  if (workspace) PageConfig.setOption("workspace", workspace);
  if (treePath) PageConfig.setOption("treePath", treePath);
}
