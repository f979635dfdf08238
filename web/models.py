"""The web pages' own state: which customer sign-in links were used.

Sign-in links are signed and expire (consent.services.signin); recording each used link's hash
here makes every link work once. Nothing personal is stored: a SHA-256 of the token
and a time.
"""

from __future__ import annotations

from django.db import models


class UsedSignInLink(models.Model):
    token_hash = models.CharField(max_length=64, primary_key=True, help_text="SHA-256 of the link's token.")
    used_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"used sign-in link {self.token_hash[:12]}"
