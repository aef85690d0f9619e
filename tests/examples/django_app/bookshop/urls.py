from django.urls import path

from catalog import views

urlpatterns = [
    path("books/", views.book_list),
    path("books/<int:pk>/", views.book_detail),
    path("books/<int:pk>/sell/", views.sell),
]
