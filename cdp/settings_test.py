"""Test settings: the environment's configuration plus fast hashing and eager tasks.

Integration tests that need a real worker switch eager mode off themselves.
"""

from cdp.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
TESSERA_IN_PROCESS_SWEEP_SECONDS = 0  # tests that need the in-process sweep turn it on
