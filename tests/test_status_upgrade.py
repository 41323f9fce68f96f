"""Statuses an older version recorded in the plugin's store as labels read as the host's values."""

from __future__ import annotations

import pytest

from ambac_hubspot_plugin._inbound_records import with_status_values
from ambac_hubspot_plugin._reconcile import _status_value
from ambac_hubspot_plugin.host import OrderStatus


@pytest.mark.parametrize("status", list(OrderStatus))
def test_a_label_a_link_recorded_compares_as_its_value(status: OrderStatus) -> None:
    """A link's last synced ``order_status`` written as a label (any case) becomes the value, so
    the next sync sees no change and records no conflict; other fields stay as they were."""
    for recorded in (status.label, status.label.upper(), status.value):
        synced = with_status_values({"order_status": recorded, "name": "In progress"})
        assert synced == {"order_status": status.value, "name": "In progress"}


def test_a_recorded_value_that_is_no_status_is_compared_as_it_is() -> None:
    """Something that is not a status (a custom mapping's text) is left alone, not refused."""
    assert with_status_values({"order_status": "Shipped"}) == {"order_status": "Shipped"}
    assert with_status_values({"order_status": None}) == {"order_status": None}


@pytest.mark.parametrize("status", list(OrderStatus))
def test_reconcile_reads_a_pushed_label_as_the_same_status(status: OrderStatus) -> None:
    """The status reconcile compares with the order's is the value even when an older version
    pushed the label, so an upgrade writes no note and moves no stage for an unchanged order."""
    assert _status_value(status.label) == status.value
    assert _status_value(status.value) == status.value
    assert _status_value(None) is None
    assert _status_value("Shipped") == "Shipped"
