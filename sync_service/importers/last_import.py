"""Whether a CSV row's stage (opportunities) or status (leads) is a change to apply, given what the file last set.

The opportunities and leads files are master lists imported again and again, while the process engine moves
the same records on: a synced meeting completes a step and the opportunity enters the next stage, a Lead
management stage or step result sets the lead's status; a person may set them by hand too. Importing the same
file again must change nothing (SPEC §5), and a stage or status that sales ops changed in the file must still be
applied. So the file's value is compared with what the file last set for the record — ``Opportunity.imported_stage``
/ ``Lead.imported_status``, written by every import that has a value for it — not only with the stored value:

- the file's value is the stored one: nothing to do (``SAME``);
- it is what the file last set, and the record has moved on since: the stored value stands (``KEPT``; the
  import's summary counts these);
- anything else is a change made in the file: it is applied (``APPLY``), through the process engine for an
  opportunity whose process runs.

No import recorded (records stored before revision 0016, or made by a process or a person): what the file last
set is inferred, erring towards keeping what the process or a person did — the first import after the upgrade
must not undo the progress that the earlier versions' re-imports rolled back.

- An opportunity whose history shows it at the file's stage before: the file is taken to have set that stage,
  and the opportunity has moved on from it since (the process, or a person): the stored stage stands. A stage
  the opportunity was never at is a change made in the file: it is applied. (Without history only an import or
  a direct write set the stage: the file's other stage is applied, as before.) A deliberate move back to a stage
  visited before is thus not applied by the first import after the upgrade; the summary counts it as kept, and
  ``crm-sync opportunity stage`` sets it.
- A lead whose process runs, or that an opportunity was made from (its status reached one that starts a sale —
  ``Awaiting sale`` — by a process or by ``crm-sync lead status``): the stored status stands (no history says
  which one the file set); the next change in the file is applied. Any other lead: the file's other status is
  applied (only an import or ``lead status`` without consequence can have set the stored one).

Empty cells are no value: they leave the stored value and the record of the last import alone.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Lead, Opportunity, OpportunityHistory

Verdict = Literal["same", "kept", "apply"]
SAME: Verdict = "same"
KEPT: Verdict = "kept"
APPLY: Verdict = "apply"


def verdict(file_value: str, stored: str, last: str) -> Verdict:
    """What a row's ``file_value`` does to the ``stored`` value, ``last`` being what the file last set."""
    wanted = file_value.casefold()
    if wanted == stored.casefold():
        return SAME
    return KEPT if wanted == last.casefold() else APPLY


def last_stage(session: Session, opportunity: Opportunity, file_value: str) -> str:
    """The stage the opportunities file last set for ``opportunity`` (inferred when no import recorded one)."""
    if opportunity.imported_stage is not None:
        return opportunity.imported_stage
    visited = session.scalars(
        select(OpportunityHistory.stage).where(OpportunityHistory.opportunity_id == opportunity.id).distinct()
    )
    return file_value if file_value.casefold() in {stage.casefold() for stage in visited} else opportunity.stage


def last_status(session: Session, lead: Lead, file_value: str) -> str:
    """The status the leads file last set for ``lead`` (inferred when no import recorded one)."""
    if lead.imported_status is not None:
        return lead.imported_status
    if lead.process_id is not None:
        return file_value
    converted = session.scalar(select(Opportunity.id).where(Opportunity.lead_id == lead.id).limit(1))
    return file_value if converted is not None else lead.status
