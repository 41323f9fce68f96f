"""The host double's one app, named like the real host's."""
