import json

from django.core.management.base import CommandError

from campaigns.errors import CampaignUnknown
from campaigns.services.campaigns import campaign_get
from campaigns.services.results import campaign_analysis
from cdp.management.base import TesseraCommand


class Command(TesseraCommand):
    help = ("Exact analysis of a campaign for operators with database access (inside the privacy boundary): "
            "per-arm totals, lift with always-valid intervals with and without CUPED, SRM, probability of being "
            "best, off-policy estimates (IPS, SNIPS, DR) of candidate allocations. One JSON document.")

    def add_arguments(self, parser):
        parser.add_argument("key")

    def handle(self, *args, **options):
        try:
            campaign = campaign_get(key=options["key"])
        except CampaignUnknown:
            raise CommandError("No campaign has this key.") from None
        self.stdout.write(json.dumps(campaign_analysis(campaign=campaign), default=str))
