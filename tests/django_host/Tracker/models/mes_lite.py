"""Orders and their milestones in the host double (HOST.md's facts on ``Orders``).

``customer_note`` is the order's whole notes timeline as one text: ``add_note`` appends an
entry, ``get_notes`` reads them back. The entry format is this double's own.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import models
from django.utils import timezone

from .core import Companies, SecureModel, User

_ENTRY = re.compile(r"^--- (?P<at>\S+) \| (?P<visibility>[A-Z]+) \| (?P<user>[^\n]*)\n", re.MULTILINE)


class OrdersStatus(models.TextChoices):
    RFI = "RFI", "RFI"
    PENDING = "PENDING", "Pending"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    ON_HOLD = "ON_HOLD", "On hold"
    CANCELLED = "CANCELLED", "Cancelled"


class MilestoneTemplate(SecureModel):
    name = models.CharField(max_length=100)


class Milestone(SecureModel):
    template = models.ForeignKey(MilestoneTemplate, on_delete=models.CASCADE, related_name="milestones")
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField()


class Orders(SecureModel):
    order_number = models.CharField(max_length=20, blank=True)
    name = models.CharField(max_length=200)
    company = models.ForeignKey(Companies, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    estimated_completion = models.DateField(null=True, blank=True)
    original_completion_date = models.DateField(null=True, blank=True)
    order_status = models.CharField(max_length=20, choices=OrdersStatus.choices, default=OrdersStatus.PENDING)
    current_milestone = models.ForeignKey(
        Milestone, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    customer_note = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "order_number"], name="order_number_per_tenant")
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.order_number:
            self.order_number = self._next_number(kwargs.get("using") or self._state.db or "default")
        super().save(*args, **kwargs)

    def _next_number(self, db: str) -> str:
        prefix = f"ORD-{timezone.now().year}-"
        taken = type(self).unscoped.using(db).filter(
            tenant_id=self.tenant_id, order_number__startswith=prefix
        ).values_list("order_number", flat=True)
        serial = max((int(n[len(prefix):]) for n in taken if n[len(prefix):].isdigit()), default=0)
        return f"{prefix}{serial + 1:04d}"

    def add_note(self, user: User | None, message: str, visibility: str = "VISIBLE") -> None:
        """Append a note to the timeline; ``INTERNAL`` notes are for staff only."""
        author = "system" if user is None else user.get_username()
        entry = f"--- {timezone.now().isoformat()} | {visibility} | {author}\n{message}"
        self.customer_note = f"{self.customer_note}\n{entry}" if self.customer_note else entry
        # As the host's: it does not save; the caller saves the order.

    def get_notes(self, customer_view: bool = False) -> list[dict[str, str]]:
        """The timeline's entries, newest first (only ``VISIBLE`` ones for the customer's view).
        Text before the first entry (typed without the note service) is one visible note."""
        notes: list[dict[str, str]] = []
        text = self.customer_note
        matches = list(_ENTRY.finditer(text))
        head = text[: matches[0].start()] if matches else text
        if head.strip():
            notes.append({"timestamp": "", "visibility": "VISIBLE", "user": "", "message": head.rstrip("\n")})
        for index, match in enumerate(matches):
            end = matches[index + 1].start() - 1 if index + 1 < len(matches) else len(text)
            notes.append({"timestamp": match["at"], "visibility": match["visibility"],
                          "user": match["user"], "message": text[match.end():end]})
        if customer_view:
            notes = [note for note in notes if note["visibility"] == "VISIBLE"]
        return notes[::-1]
