"""The double's service layer."""
