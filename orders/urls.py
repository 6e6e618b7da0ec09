from __future__ import annotations

from django.urls import path

from orders import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("bulk/", views.bulk, name="bulk"),
    path("team/", views.team, name="team"),
    path("people/<str:username>/", views.person, name="person"),
    path("orders/<str:order_id>/", views.order_detail, name="order"),
    path("orders/<str:order_id>/notes/", views.order_note, name="order_note"),
    path("orders/<str:order_id>/<str:action>/", views.order_action, name="order_action"),
]
