# Seeds the Django site with N active users load{i}@load.test (username
# load{i}) with a usable (MD5) password. usage: python seed.py [N]
import os
import sys
import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
django.setup()
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
h = make_password("x" * 20)
User.objects.all().delete()
User.objects.bulk_create(
    (User(username=f"load{i}", email=f"load{i}@load.test", password=h) for i in range(N)),
    batch_size=5000,
)
print(User.objects.count(), "users")
