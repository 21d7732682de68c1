import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("django index", content_type="text/plain")


def info(request):
    return JsonResponse({"path": request.path, "path_info": request.path_info, "script_name": request.META.get("SCRIPT_NAME"),
                         "get": request.GET.dict(), "host": request.get_host()})


@csrf_exempt
def echo(request):
    if request.method != "POST":
        return HttpResponse("POST only", status=405)
    if request.content_type == "application/json":
        return JsonResponse({"json": json.loads(request.body)})
    return JsonResponse({"form": request.POST.dict()})


def protected(request):  # no csrf_exempt: a POST without token gets 403
    return HttpResponse("ok")
