from enum import StrEnum

from cdp.core.errors import ApplicationError, NotFound


class CampaignErrorCode(StrEnum):
    INVALID_CAMPAIGN = "invalid_campaign"
    CAMPAIGN_EXISTS = "campaign_exists"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    UNKNOWN_SEGMENT = "unknown_segment"
    PERSONAL_ATTRIBUTE = "personal_attribute_in_rule"
    NOT_RUNNING = "campaign_not_running"


class CampaignInvalid(ApplicationError):
    status = 400
    code = CampaignErrorCode.INVALID_CAMPAIGN


class CampaignUnknown(NotFound):
    code = CampaignErrorCode.UNKNOWN_CAMPAIGN
