from django.contrib import admin
from django.urls import include, path
urlpatterns = [
    path("admin/", admin.site.urls),  # the stock registration templates link to it
    path("accounts/", include("django.contrib.auth.urls")),
]
