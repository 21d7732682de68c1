from django.urls import path

from . import views

urlpatterns = [path("", views.hit), path("hit/", views.hit)]
