"""Tests of the Django bridge on the host double (``tests/django_host``); they need Django."""
