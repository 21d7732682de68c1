from django.http import JsonResponse

from .models import Hit


def hit(request):
    """One INSERT per request, as a page view counter or an audit log does."""
    h = Hit.objects.create(path=request.path[:200], agent=request.META.get("HTTP_USER_AGENT", "")[:200])
    return JsonResponse({"id": h.id, "path": h.path})
