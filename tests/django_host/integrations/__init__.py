"""The double's integration registry app, named like the real host's (``integrations``)."""
