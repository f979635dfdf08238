"""Consent and compliance: purposes, notices, the consent ledger, DSRs, the access log.

`consent` imports nothing of ours but infrastructure (`cdp.core`, `cdp.core.http`), and
the other apps reach it only through its public interface (both checked by the
import-linter contracts in pyproject.toml):

- `consent.policy`: may this person's data be used for this purpose (`allowed`,
  `is_allowed`, `effective_states`, `decision_status`, `PURPOSES`);
- `consent.registry`: the hooks through which the apps that own data do consent's work
  on it (resolve identifiers, export, erase, rectify, clean up on withdrawal);
- `consent.selectors`: reads (states, ledger events, receipts, the access log, DSRs,
  ledger verification and the compliance console's lists);
- `consent.services` and its modules: writes (consent changes, GPC, DSRs, sign-in links,
  ledger verification, audit rows in `consent.services.access`);
- `consent.errors`: the codes and exception types those raise.

Everything else (models, ledger, notices, receipts, events, tasks, admin, API views) is
internal: it may change without any other app changing.
"""
