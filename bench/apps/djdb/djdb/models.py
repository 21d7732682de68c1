from django.db import models


class Hit(models.Model):
    path = models.CharField(max_length=200)
    agent = models.CharField(max_length=200)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "djdb"
