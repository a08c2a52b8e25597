"""``python -m jupyter_http_over_ws.doctor URL ...``: the doctor without the ``jupyter`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
