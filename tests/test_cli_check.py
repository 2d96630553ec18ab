"""`nslang check` stays light: it never imports torch (or matplotlib), so it answers fast."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_check_imports_neither_torch_nor_matplotlib():
    code = ("import sys; from nslang.cli import main; status = main(['check', '-q', "
            "'specs/hope.nsam']); print(status, 'torch' in sys.modules, "
            "'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["0", "False", "False"], out.stderr
