"""The double's webhook view: the registry's adapter verifies the delivery, then handles it inside
the tenant's context; its dict answer becomes the JSON response (SMOKE_FINDINGS item 7)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from Tracker.utils.tenant_context import tenant_context

from .models import IntegrationConfig
from .services.registry import get_adapter


@csrf_exempt
@transaction.non_atomic_requests
def integration_webhook(request: HttpRequest, provider: str, tenant_id: str) -> HttpResponse:
    integration = IntegrationConfig.objects.filter(provider=provider, tenant_id=tenant_id).first()
    if integration is None:
        return HttpResponse(status=404)
    adapter = get_adapter(provider)
    if not adapter.verify_webhook(request, integration):
        return HttpResponse(status=403)  # the real host answers 403 (seen in the smoke run)
    with tenant_context(integration.tenant_id):
        return JsonResponse(adapter.handle_webhook(request, integration))
