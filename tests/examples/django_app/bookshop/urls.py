from catalog import views
from django.urls import path

urlpatterns = [
    path("books/", views.book_list),
    path("books/<int:pk>/", views.book_detail),
    path("books/<int:pk>/sell/", views.sell),
]
