"""The pages: /me/ (customers), /compliance/ (compliance officers), /ops/ (operators)."""

from django.urls import path

from web.views import campaigns, compliance, compliance_lists, me, ops, ops_recommendations, staff

app_name = "web"

urlpatterns = [
    # The preference center.
    path("me/", me.home, name="me-home"),
    path("me/signin/", me.sign_in, name="me-sign-in"),
    path("me/signin/<str:token>/", me.sign_in_link_open, name="me-sign-in-link"),
    path("me/signout/", me.sign_out, name="me-sign-out"),
    path("me/demo/", me.demo, name="me-demo"),
    path("me/choices/", me.choices_save, name="me-choices"),
    path("me/personalization/", me.personalization_set, name="me-personalization"),
    path("me/data/", me.data, name="me-data"),
    path("me/data/export/", me.export_request, name="me-export"),
    path("me/data/requests/<uuid:request_id>/download/", me.export_download, name="me-export-download"),
    path("me/data/requests/<uuid:request_id>/summary/", me.export_download, {"readable": True},
         name="me-export-summary"),
    path("me/data/receipts/", me.receipts_all, name="me-receipts"),
    path("me/data/receipts/<uuid:event_id>/", me.receipt, name="me-receipt"),
    path("me/erase/", me.erase, name="me-erase"),
    # Staff log-in.
    path("staff/login/", staff.staff_login, name="staff-login"),
    path("staff/logout/", staff.staff_logout, name="staff-logout"),
    path("staff/timezone/", staff.staff_timezone, name="staff-timezone"),
    path("compliance/login/", staff.login_redirect),
    path("ops/login/", staff.login_redirect),
    # The compliance console.
    path("compliance/", compliance.overview, name="compliance"),
    path("compliance/ledger/", compliance.ledger, name="compliance-ledger"),
    path("compliance/ledger/verify/", compliance.ledger_verify, name="compliance-ledger-verify"),
    path("compliance/ledger/export/", compliance.ledger_export, name="compliance-ledger-export"),
    path("compliance/ledger/checkpoint/", compliance.ledger_checkpoint, name="compliance-ledger-checkpoint"),
    path("compliance/subjects/", compliance.subjects, name="compliance-subjects"),
    path("compliance/subjects/evidence/", compliance.subject_evidence, name="compliance-subject-evidence"),
    path("compliance/requests/", compliance_lists.requests, name="compliance-requests"),
    path("compliance/requests/<uuid:request_id>/", compliance.request_detail, name="compliance-request"),
    path("compliance/access-log/", compliance_lists.access_log, name="compliance-access-log"),
    path("compliance/budget/", compliance.budget, name="compliance-budget"),
    path("compliance/configuration/", compliance.configuration, name="compliance-configuration"),
    # The operator dashboard.
    path("ops/", ops.overview, name="ops"),
    path("ops/merges/", ops.merges, name="ops-merges"),
    path("ops/merges/conflicts/<uuid:conflict_id>/approve/", ops.conflict_approve, name="ops-conflict-approve"),
    path("ops/merges/conflicts/<uuid:conflict_id>/apply/", ops.conflict_apply, name="ops-conflict-apply"),
    path("ops/merges/<uuid:merge_id>/unmerge/", ops.unmerge, name="ops-unmerge"),
    path("ops/recommendations/", ops_recommendations.recommendations, name="ops-recommendations"),
    path("ops/recommendations/overrides/", ops_recommendations.override_create, name="ops-override-create"),
    path("ops/recommendations/overrides/<int:override_id>/lift/", ops_recommendations.override_lift,
         name="ops-override-lift"),
    path("ops/webhooks/", ops.webhooks, name="ops-webhooks"),
    path("ops/ingestion/", ops.ingestion, name="ops-ingestion"),
    path("ops/campaigns/", campaigns.campaigns, name="ops-campaigns"),
    path("ops/campaigns/<slug:key>/", campaigns.campaign, name="ops-campaign"),
    path("ops/campaigns/<slug:key>/<str:action>/", campaigns.campaign_action, name="ops-campaign-action"),
]
