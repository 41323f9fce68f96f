"""The ``ambac-hubspot`` commands beyond the sandbox and the demo: admin operations on a host
(``_admin``, the shared host options and output), conflicts, sync, and the reference host's
own commands. ``ambac_hubspot_plugin.cli`` assembles them; the modules here share helpers."""
