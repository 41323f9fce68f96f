"""The double's webhook view: whatever adapter the registry chooses verifies and handles it."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .adapters import get_adapter
from .models import IntegrationConfig


@csrf_exempt
@transaction.non_atomic_requests
def integration_webhook(request: HttpRequest, provider: str, tenant_id: str) -> HttpResponse:
    config = IntegrationConfig.objects.filter(provider=provider, tenant_id=tenant_id).first()
    if config is None:
        return HttpResponse(status=404)
    adapter = get_adapter(config)
    if not adapter.verify_webhook(request):
        return HttpResponse(status=401)
    return adapter.handle_webhook(request)
