from __future__ import annotations

from django.urls import path

from orders import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("bulk/", views.bulk, name="bulk"),
    path("orders/<str:order_id>/", views.order_detail, name="order"),
    path("orders/<str:order_id>/<str:action>/", views.order_action, name="order_action"),
]
