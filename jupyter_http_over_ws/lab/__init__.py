"""JupyterLab on another origin, driving a Jupyter server through the tunnel.

``jupyter http-over-ws lab URL`` serves the JupyterLab installed on this machine (its
own built frontend, unmodified) from a page server on ``localhost``, with a federated
extension of ours (``labextension/``, built from ``js/lab-extension``) that gives
JupyterLab the tunnel's ``fetch`` and ``WebSocket`` as its server connection settings.

- :mod:`.frontend`: find the installed JupyterLab and render its page for another origin;
- :mod:`.pageserver`: the static page server (the page, JupyterLab's files, themes and
  federated extensions; nothing else, and never a request to the Jupyter server);
- :mod:`.command`: the ``lab`` subcommand.
"""
