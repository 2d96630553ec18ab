"""Make tests/optim/_common.py importable as `_common` however pytest is invoked."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
