"""The worker process that ``tests/test_crash_stall.py`` kills in the middle of a job.

Run as ``python tests/_stall_child.py <host data dir> <tenant id> <lease seconds> <kind>...``.
It opens a ReferenceHost on the shared data dir, lets ``host.start()`` enable the plugin from
the stored settings, gives the runtime a lease of ``lease seconds``, keeps only the handlers
of the given job kinds, prints ``ready``, waits for a line on stdin and then drains the queue
until it is killed. Each job it
starts is announced as ``started <job id>`` before the real handler runs.

The ``webhook.inbox`` handler is the real splitter with small rounds and a pause per delivery,
so a split of a few dozen deliveries lasts long enough to be cut in the middle.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin._webhooks import INBOX_JOB_KIND, WebhookInboxSplitter
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.store import Job


def main(data_dir: Path, tenant_id: int, lease: float, kinds: list[str]) -> int:
    """Start the host and drain the given kinds until killed; return the exit status."""
    with ReferenceHost(data_dir) as host:
        (start,) = [s for s in host.start() if s.plugin_id == plugin_module.PLUGIN_ID]
        if start.error:
            print(f"plugin did not start: {start.error}", file=sys.stderr, flush=True)
            return 2
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        runtime.job_lease = timedelta(seconds=lease)
        if INBOX_JOB_KIND in kinds:
            slow = WebhookInboxSplitter(runtime.store_for, per_round=2, pause=0.05)
            runtime.handlers[INBOX_JOB_KIND] = slow.handle_job
        for kind in list(runtime.handlers):
            if kind not in kinds:
                del runtime.handlers[kind]
        for kind in kinds:
            real = runtime.handlers[kind]

            def announce(job: Job, real: Callable[[Job], None] = real) -> None:
                print(f"started {job.id}", flush=True)
                real(job)

            runtime.handlers[kind] = announce
        print("ready", flush=True)
        sys.stdin.readline()  # the parent's "go", once it has slowed the sandbox down
        while True:
            runtime.drain()
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
