"""Bridges to particular hosts' frameworks; each subpackage is the only code importing its framework."""
