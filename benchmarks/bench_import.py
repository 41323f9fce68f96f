"""Print what importing and registering the plugin costs on top of importing pluggy.

Each figure is the median of fresh interpreter runs (``python -X importtime`` is not used: it
adds its own overhead). The target from issue #2 is under 30 ms on top of pluggy.
Run: ``.venv/bin/python benchmarks/bench_import.py [runs]``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

BASELINE = """
import time, json
t0 = time.perf_counter()
import pluggy
t1 = time.perf_counter()
print(json.dumps({"pluggy_ms": (t1 - t0) * 1000}))
"""

REGISTER = """
import time, json, sys
t0 = time.perf_counter()
import pluggy
t1 = time.perf_counter()
from ambac_hubspot_plugin import host as contract
pm = pluggy.PluginManager(contract.PROJECT_NAME)
pm.add_hookspecs(contract)
pm.hook.ambac_add_hookspecs.call_historic(kwargs={"plugin_manager": pm})
import ambac_hubspot_plugin.plugin as plugin
pm.register(plugin, name="hubspot")
pm.check_pending()
t2 = time.perf_counter()
sdk, sqla = "hubspot" in sys.modules, "sqlalchemy" in sys.modules
pm.hook.ambac_plugin_manifest()
t3 = time.perf_counter()
print(json.dumps({"pluggy_ms": (t1 - t0) * 1000, "register_ms": (t2 - t1) * 1000,
                  "manifest_ms": (t3 - t2) * 1000,
                  "sdk_imported": sdk, "sqlalchemy_imported": sqla,
                  "threads": __import__("threading").active_count()}))
"""


def _run(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for _ in range(2):  # warm the OS file cache
        _run(REGISTER)
    samples = [_run(REGISTER) for _ in range(runs)]
    register = statistics.median(s["register_ms"] for s in samples)
    pluggy_ms = statistics.median(s["pluggy_ms"] for s in samples)
    print(f"runs: {runs}")
    print(f"import pluggy:                          {pluggy_ms:6.1f} ms (median)")
    print(f"import + register the plugin on top:    {register:6.1f} ms (median; target < 30 ms)")
    print(f"  worst run:                            {max(s['register_ms'] for s in samples):6.1f} ms")
    manifest = statistics.median(s["manifest_ms"] for s in samples)
    print(f"first hook call afterwards (manifest):  {manifest:6.1f} ms (median; loads attrs, cattrs,")
    print("                                                 the records and the settings schema)")
    last = samples[-1]
    print(f"HubSpot SDK imported by registering:    {last['sdk_imported']}")
    print(f"SQLAlchemy imported by registering:     {last['sqlalchemy_imported']}")
    print(f"threads after registering:              {int(last['threads'])}")


if __name__ == "__main__":
    main()
