"""The double's URLconf (no routes yet: the bridge's views come in a later stage)."""

urlpatterns: list[object] = []
