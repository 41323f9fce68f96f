"""One HubSpot portal serves one tenant: both would sync the same deals and write their own
orders onto them, each taking the other's writes for a person's edits."""

from __future__ import annotations

import pytest

from ambac_hubspot_plugin.errors import ConfigError

from ._world import open_world


def test_a_portal_another_enabled_tenant_is_connected_to_is_refused_naming_both(tmp_path):
    with open_world(tmp_path) as world:
        deal = world.deal(dealname="Brackets")
        assert world.sync().created == 1
        other = world.host.create_tenant("Beta Fabrication")
        with pytest.raises(ConfigError) as raised:
            world.host.enable_plugin(other, "hubspot", world.settings)
        problem = raised.value.problems["portal_id"]
        assert world.settings["portal_id"] in problem and world.tenant in problem
        assert not world.runtime.is_enabled(other)
        # The first tenant's own settings changes keep its portal.
        world.configure(sync_interval_seconds=600)
        # Once the first tenant lets the portal go, the other may take it.
        world.host.disable_plugin(world.tenant, "hubspot")
        world.host.enable_plugin(other, "hubspot", world.settings)
        assert world.runtime.is_enabled(other)
        assert world.order_for(deal) is not None, "the first tenant's order stays"
