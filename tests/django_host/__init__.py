"""A double of Ambac Tracker for the Django bridge's tests, written from the facts in HOST.md.

It has the real host's import paths (``Tracker.models``, ``Tracker.utils.tenant_context``...)
so the bridge imports the same names here as in the real host; none of its code comes from
the host. ``settings`` puts this directory on ``sys.path`` so ``Tracker`` imports as a
top-level package, as it does in the host.
"""
