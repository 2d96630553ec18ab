"""Make tests/eval/_common.py importable as `_common`; register the network marker."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_configure(config):
    config.addinivalue_line("markers", "network: fetches from a package registry (runs by default)")
