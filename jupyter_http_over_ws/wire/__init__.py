"""The pure core: what travels on the wire, with no I/O.

Nothing in this package imports Tornado, asyncio or jupyter_server (a test checks
this), so the server, the Python client and the polling transport share one parser
and one encoder, and all of it is tested without a server:

- :mod:`.protocol`: tunnelled requests and replies as JSON frames, validation, paths
- :mod:`.framing`: the opt-in binary frame layout beside the JSON frames
- :mod:`.handshake`: what is decided when a socket opens (``min_version``, auth URL)
- :mod:`.polling`: the polling transport's envelopes, batches and sequence numbers
- :mod:`.names`: close codes and endpoint paths, defined once
"""
