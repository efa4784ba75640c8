"""Run a snippet in a fresh interpreter where adlr_hf cannot be imported, as on a machine that only has the
published folder (loaded with trust_remote_code=True)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_PRELUDE = f"""
import sys
sys.path = [p for p in sys.path if p not in ("", {os.getcwd()!r})]

class NoAdlrHf:  # the editable install's import hook would otherwise still find the package
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "adlr_hf" or name.startswith("adlr_hf."):
            raise ModuleNotFoundError("No module named 'adlr_hf'")
        return None

sys.meta_path.insert(0, NoAdlrHf)
try:
    import adlr_hf
    raise SystemExit("adlr_hf must not be importable here")
except ImportError:
    pass
"""


def run_without_adlr_hf(body: str, hf_home, env: dict | None = None, timeout: int = 300) -> str:
    """Run the dedented `body` after the import block; fail the test on a non-zero exit; return stdout."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    full_env.update(HF_HOME=str(hf_home), **(env or {}))
    # -I: isolated mode, so neither the working directory nor user site-packages apply.
    result = subprocess.run([sys.executable, "-I", "-c", _PRELUDE + textwrap.dedent(body)], capture_output=True,
                            text=True, env=full_env, cwd=hf_home.parent if hasattr(hf_home, "parent") else None,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
