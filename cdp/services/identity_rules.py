"""Identity-resolution rules: what a source may say about who a person is, by its assurance.

Every identity remembers the source that asserted it and that source's assurance
(`cdp.models.Assurance`):

- `verified`: a server-side system that verified the address (a double opt-in, a login);
- `asserted`: another server-side system (a CRM, a shop backend); the default;
- `client`: a write key used from browsers and apps. Such a key is public (it is in the
  page), so anything it says may come from anyone.

The rules, decided here and nowhere else (the resolver asks them for every record):

1. A `client` source may link anonymous ids and its own user ids to the person it names.
2. A `client` source may not attach an email or phone (a *contact* identifier: what
   sign-in and messages go to) to a profile that already holds one, whoever asserted
   it. Otherwise anyone could add their own address to a known customer's profile (or
   to a profile holding only a phone) and sign in as them.
3. A `client` source may not merge two profiles that both hold contact identifiers.
4. A link refused by 2 or 3 is held for review in the merge-conflict queue, with its
   reason; the record itself is kept (attached to one profile), so nothing is lost.
5. When a more trusted source asserts an identifier a profile already holds, the
   identity takes that source and assurance (provenance only ever improves).

Sign-in (consent.services.signin asks through the registry, `sign_in_addresses`): a magic link
goes only to an email address of `verified` or `asserted` provenance; a profile with no
contact identifier of such provenance may use its one email address if it has exactly
one. The link names the address (its blind index) and is checked again when redeemed.
"""

from __future__ import annotations

from cdp.models import Assurance

CONTACT_KINDS = frozenset({"email", "phone"})
SIGN_IN_KIND = "email"

_RANK = {Assurance.CLIENT: 0, Assurance.ASSERTED: 1, Assurance.VERIFIED: 2}
_TRUSTED = frozenset({Assurance.ASSERTED, Assurance.VERIFIED})

# Reasons a link is held for review (MergeConflict.reason).
UNTRUSTED_CONTACT = "untrusted_contact_identifier"
UNTRUSTED_MERGE = "untrusted_merge"


def outranks(assurance: str, other: str) -> bool:
    """Whether `assurance` is a stronger provenance than `other` (rule 5)."""
    return _RANK[assurance] > _RANK[other]


def contact_attach_refused(*, assurance: str, kind: str, contacts_held: int) -> bool:
    """Rule 2: whether a source of this assurance may not attach this identifier to a
    profile that holds `contacts_held` contact identifiers."""
    return assurance == Assurance.CLIENT and kind in CONTACT_KINDS and contacts_held > 0


def merge_refused(*, assurance: str, profiles_with_contacts: int) -> bool:
    """Rule 3: whether a source of this assurance may not merge profiles of which
    `profiles_with_contacts` hold a contact identifier."""
    return assurance == Assurance.CLIENT and profiles_with_contacts > 1


def contacts_held(counts) -> int:
    """How many contact identifiers a profile holds, from its identities counted by kind."""
    return sum(counts.get(kind, 0) for kind in CONTACT_KINDS)


def sign_in_addresses(identities) -> list[str]:
    """The blind indexes of a profile's email addresses that may receive a sign-in link.

    `identities`: (kind, blind index, assurance) of every identity of one active profile.
    """
    if any(kind in CONTACT_KINDS and assurance in _TRUSTED for kind, _, assurance in identities):
        return sorted(index for kind, index, assurance in identities
                      if kind == SIGN_IN_KIND and assurance in _TRUSTED)
    emails = [index for kind, index, _ in identities if kind == SIGN_IN_KIND]
    return emails if len(emails) == 1 else []
