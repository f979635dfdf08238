import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from cdp.management.base import TesseraCommand
from cdp.staff import ROLES, staff_create


class Command(TesseraCommand):
    help = "Create a staff user with a role (compliance officer or operator)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--password-from-env", metavar="VAR",
                            help="Read the password from this environment variable; otherwise one is generated.")

    def handle(self, *args, username, role, password_from_env, **options):
        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"A user named '{username}' already exists.")
        if password_from_env:
            password = os.environ.get(password_from_env)
            if not password:
                raise CommandError(f"The environment variable {password_from_env} is not set.")
            try:
                validate_password(password)
            except ValidationError as error:
                raise CommandError("The password is too weak: " + " ".join(error.messages)) from None
            generated = False
        else:
            password, generated = secrets.token_urlsafe(16), True
        staff_create(username=username, role=role, password=password)
        self.stderr.write(f"Created {role} staff user '{username}'.")
        if generated:
            self.stderr.write("Generated password (shown once):")
            self.stdout.write(password)
