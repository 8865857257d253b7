"""Imports every domain's tables so that ``metadata`` is complete (for Alembic)."""

from servicecycle.auth import models as auth_models
from servicecycle.automation import models as automation_models
from servicecycle.channels import models as channel_models
from servicecycle.chat import models as chat_models
from servicecycle.customers import models as customer_models
from servicecycle.db.base import Base
from servicecycle.events import models as event_models
from servicecycle.followups import models as followup_models
from servicecycle.jobs import models as job_models
from servicecycle.notifications import models as notification_models
from servicecycle.portal import models as portal_models
from servicecycle.sla import models as sla_models
from servicecycle.surveys import models as survey_models
from servicecycle.tickets import models as ticket_models
from servicecycle.webhooks import models as webhook_models

metadata = Base.metadata

__all__ = [
    "auth_models",
    "automation_models",
    "channel_models",
    "chat_models",
    "customer_models",
    "event_models",
    "followup_models",
    "job_models",
    "metadata",
    "notification_models",
    "portal_models",
    "sla_models",
    "survey_models",
    "ticket_models",
    "webhook_models",
]
