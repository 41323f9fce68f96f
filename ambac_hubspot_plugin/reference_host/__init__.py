"""A small but real multi-tenant host that speaks the plugin contract of :mod:`ambac_hubspot_plugin.host`.

No released Ambac Tracker speaks the contract yet, so this package is its executable example,
used by the demo, by the tests and by host developers. It keeps the real host's field limits and
status values in one SQLite file, and calls hooks exactly as a real host would: through a fresh
``pluggy.PluginManager("ambac_tracker")`` per host, which discovers plugins by entry point.

Two doors lead into it, on purpose:

* :class:`TenantServices` is what plugins get (the :class:`~ambac_hubspot_plugin.host.HostServices`
  Protocol). Its writes never call hooks, so changes a plugin makes are not echoed back to it as
  events (a real host marks such saves as coming from the integration and skips its signals).
* :class:`ReferenceHost`'s admin and domain methods (``enable_plugin``, ``set_order_status``,
  ``edit_order``, ``ship_order``, ``save_company``...) stand for the host's own UI and model
  signals: they write, commit, then call the ``ambac_*`` hooks with keyword arguments.

Its modules, each with one job, import one another in this order only (no cycles):
``_validate`` (field limits and checks) and ``_records`` (the records the host returns), then
``_db`` (the SQLite file and its rows), ``_services`` (:class:`TenantServices`), ``_http`` (the
router and WSGI app), ``_scheduler`` (periodic tasks), and last ``_host`` (:class:`ReferenceHost`).
"""

from ..mapping import normalize_domain
from ._host import ReferenceHost
from ._http import DEFAULT_MAX_BODY_BYTES, DEFAULT_MOUNT_PREFIX
from ._records import NOTIFICATION_LEVELS, Notification, PluginStart, TaskRun
from ._services import TenantServices
from ._validate import EMAIL_MAX, PERSON_NAME_MAX

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MOUNT_PREFIX",
    "EMAIL_MAX",
    "NOTIFICATION_LEVELS",
    "PERSON_NAME_MAX",
    "Notification",
    "PluginStart",
    "ReferenceHost",
    "TaskRun",
    "TenantServices",
    "normalize_domain",
]
