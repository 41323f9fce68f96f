"""The sync process that ``tests/test_crash_backfill.py`` kills: a host start, then a backfill.

Run as ``python tests/_crash_child.py <host data dir> <tenant id>``. It opens a ReferenceHost
on the shared data dir (entry-point loading on, as a real host), lets ``host.start()`` enable
the plugin from the stored settings, prints ``ready`` and runs the backfill; when the backfill
ends it prints the run's counts as one JSON line. The parent may SIGKILL it at any moment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.reference_host import ReferenceHost


def main(data_dir: Path, tenant_id: int) -> int:
    """Start the host, backfill the tenant, print the counts; return the exit status."""
    with ReferenceHost(data_dir) as host:
        (start,) = [s for s in host.start() if s.plugin_id == plugin_module.PLUGIN_ID]
        if start.error:
            print(f"plugin did not start: {start.error}", file=sys.stderr, flush=True)
            return 2
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        try:
            print("ready", flush=True)
            result = runtime.run_sync(tenant_id, backfill=True)
            counts = {"created": result.created, "updated": result.updated,
                      "unchanged": result.unchanged, "skipped": result.skipped,
                      "failed": result.failed}
            print(json.dumps(counts), flush=True)
        finally:
            runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
