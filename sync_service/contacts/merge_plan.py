"""What merging contact FROM into contact INTO changes, decided on plain rows (no database here).

One person can become two contacts — an import after their address changed, a sync that met the new address
first — and the importer then refuses a row naming both addresses. Merging moves everything of FROM onto INTO:

- addresses: FROM's go after INTO's (INTO's primary stays primary); an address INTO has already is dropped;
- phones: FROM's numbers INTO lacks (same E.164 or, without one, the same text: the importer's key);
- activity links and a person's removals (``ActivityLinkExclusion`` of kind contact) are decided per
  activity, since both contacts are one person now: a link a person made wins (as `activity link` forgets an
  earlier removal), else a removal a person made wins over an automatic link, else an automatic link stays —
  and one activity never gets two links or two removals;
- opportunity roles: FROM's on opportunities INTO is not on; where both are, INTO's role stays and its empty
  role / influence / loyalty take FROM's;
- fields: INTO's empty ones take FROM's (name parts, company, job title; the account only when INTO has none);
  otherwise INTO wins.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

FILLED_FIELDS = ("name", "first_name", "middle_name", "last_name", "company", "job_title", "account_id")
ROLE_FIELDS = ("role", "influence", "loyalty")


@dataclass(frozen=True, slots=True)
class EmailRow:
    id: int
    email: str
    position: int


@dataclass(frozen=True, slots=True)
class PhoneRow:
    id: int
    raw: str
    e164: str | None

    @property
    def key(self) -> str:
        """The importer's key of a number (``normalize.Phone.key``), without loading the importers."""
        return self.e164 or " ".join(self.raw.split())


@dataclass(frozen=True, slots=True)
class LinkRow:
    """An ``ActivityContact`` row."""

    id: int
    activity_id: int
    manual: bool


@dataclass(frozen=True, slots=True)
class ExclusionRow:
    """An ``ActivityLinkExclusion`` row of kind contact naming the contact."""

    id: int
    activity_id: int


@dataclass(frozen=True, slots=True)
class RoleRow:
    """An ``OpportunityParticipant`` row."""

    id: int
    opportunity_id: int
    values: dict[str, str | None]  # role, influence, loyalty


@dataclass(frozen=True, slots=True)
class ContactRows:
    """One contact and every row that names it, as read before the merge."""

    id: int
    fields: dict[str, object]  # FILLED_FIELDS
    emails: tuple[EmailRow, ...] = ()
    phones: tuple[PhoneRow, ...] = ()
    links: tuple[LinkRow, ...] = ()
    exclusions: tuple[ExclusionRow, ...] = ()
    roles: tuple[RoleRow, ...] = ()


@dataclass(slots=True)
class MergePlan:
    """Row ids to move to INTO, to change, or to delete. FROM's rows not named here are deleted with FROM."""

    source_id: int
    target_id: int
    fields: dict[str, object] = field(default_factory=dict)  # INTO's empty fields, filled from FROM
    emails: dict[int, int] = field(default_factory=dict)  # FROM's address row → its position at INTO
    phones: list[int] = field(default_factory=list)
    links: list[int] = field(default_factory=list)  # FROM's links moved as they are
    links_made_manual: list[int] = field(default_factory=list)  # INTO's automatic links a person's link confirms
    links_deleted: list[int] = field(default_factory=list)  # INTO's automatic links a person's removal overrides
    exclusions: list[int] = field(default_factory=list)  # FROM's removals moved
    exclusions_deleted: list[int] = field(default_factory=list)  # INTO's removals a person's link overrides
    roles: list[int] = field(default_factory=list)  # FROM's opportunity roles moved
    roles_filled: dict[int, dict[str, str]] = field(default_factory=dict)  # INTO's role row → values it takes
    activities: set[int] = field(default_factory=set)  # every activity FROM was linked to or removed from

    def summary(self) -> str:
        """What moves, for one line: "1 address, 0 phones, 2 activity links, …"."""
        parts = [
            _count(len(self.emails), "address", "addresses"),
            _count(len(self.phones), "phone", "phones"),
            _count(len(self.links), "activity link", "activity links"),
            _count(len(self.exclusions), "link removal", "link removals"),
            _count(len(self.roles), "opportunity role", "opportunity roles"),
        ]
        line = ", ".join(parts)
        if self.fields:
            line += "; fields filled: " + ", ".join(name.replace("_id", "").replace("_", " ") for name in self.fields)
        return line


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def plan_merge(source: ContactRows, target: ContactRows) -> MergePlan:
    """Decide the merge of ``source`` (FROM) into ``target`` (INTO); see the module docstring."""
    plan = MergePlan(source.id, target.id)
    plan.fields = {
        name: source.fields[name]
        for name in FILLED_FIELDS
        if not target.fields.get(name) and source.fields.get(name)
    }
    _plan_emails(plan, source, target)
    stored_phones = {p.key for p in target.phones}
    for phone in source.phones:
        if phone.key not in stored_phones:
            plan.phones.append(phone.id)
            stored_phones.add(phone.key)
    _plan_activities(plan, source, target)
    _plan_roles(plan, source, target)
    return plan


def _plan_emails(plan: MergePlan, source: ContactRows, target: ContactRows) -> None:
    stored = {e.email for e in target.emails}
    position = max((e.position for e in target.emails), default=-1) + 1
    for row in sorted(source.emails, key=lambda e: (e.position, e.id)):
        if row.email not in stored:
            plan.emails[row.id] = position
            stored.add(row.email)
            position += 1


def _plan_activities(plan: MergePlan, source: ContactRows, target: ContactRows) -> None:
    """Per activity: a person's link > a person's removal > an automatic link; one of each at most."""
    links: dict[int, dict[str, LinkRow]] = defaultdict(dict)  # activity → "from" / "into" → row
    removals: dict[int, dict[str, ExclusionRow]] = defaultdict(dict)
    for side, rows in (("from", source), ("into", target)):
        for link in rows.links:
            links[link.activity_id][side] = link
        for removal in rows.exclusions:
            removals[removal.activity_id][side] = removal
    plan.activities = {r.activity_id for r in source.links} | {r.activity_id for r in source.exclusions}
    for activity_id in sorted(plan.activities):
        linked, removed = links.get(activity_id, {}), removals.get(activity_id, {})
        if any(row.manual for row in linked.values()):
            _keep_link(plan, linked, manual=True)
            plan.exclusions_deleted.extend(r.id for side, r in removed.items() if side == "into")
        elif removed:
            if "into" not in removed:
                plan.exclusions.append(removed["from"].id)
            plan.links_deleted.extend(r.id for side, r in linked.items() if side == "into")
        elif linked:
            _keep_link(plan, linked, manual=False)


def _keep_link(plan: MergePlan, link: dict[str, LinkRow], *, manual: bool) -> None:
    """INTO keeps its own link (a person's, if either was); else FROM's link moves to INTO."""
    into = link.get("into")
    if into is None:
        plan.links.append(link["from"].id)  # FROM's row moves as it is (manual when it decided this)
    elif manual and not into.manual:
        plan.links_made_manual.append(into.id)


def _plan_roles(plan: MergePlan, source: ContactRows, target: ContactRows) -> None:
    existing = {r.opportunity_id: r for r in target.roles}
    for role in source.roles:
        kept = existing.get(role.opportunity_id)
        if kept is None:
            plan.roles.append(role.id)
            continue
        filled = {
            name: value for name in ROLE_FIELDS if not kept.values.get(name) and (value := role.values.get(name))
        }
        if filled:
            plan.roles_filled[kept.id] = filled
