"""One request to an admin page, as the page handlers see it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..admin import Admin
from ..host import MANAGE_INTEGRATIONS, HttpRequest
from . import _csrf

if TYPE_CHECKING:
    from ..admin import AdminRuntime
    from ..host import User

__all__ = ["Page"]


@attrs.frozen
class Page:
    """One request to a page: the acting user's admin API, the form sent, where the pages live."""

    admin: Admin
    runtime: AdminRuntime
    request: HttpRequest
    user: User
    base: str
    form: dict[str, str]

    @property
    def can_manage(self) -> bool:
        """Whether the user may act (resolve, replay): else the page shows buttons disabled."""
        return bool(self.admin.host.has_permission(self.user, MANAGE_INTEGRATIONS))

    def csrf_token(self) -> str:
        """A fresh token for this user's forms."""
        tenant = self.runtime.tenant(self.admin.tenant_id)
        return _csrf.issue(tenant.store, tenant.tenant_id, tenant.portal_id, self.user.id, self.runtime.clock())

    def csrf_valid(self) -> bool:
        tenant = self.runtime.tenant(self.admin.tenant_id)
        return _csrf.verify(tenant.store, tenant.tenant_id, tenant.portal_id, self.user.id, self.runtime.clock(),
                            self.form.get(_csrf.FIELD))
