"""``python -m reasonembed_rag.cli``: the same as ``reasonembed-rag``."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
