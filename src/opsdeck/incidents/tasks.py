"""Incident jobs (mail, outbound webhooks, the daily digest and follow-up reminders): ids in,
the work in service.notifications and service.outbound. Each is idempotent: a row already
sent or failed is left alone."""

from __future__ import annotations

from opsdeck.core.db import utcnow
from opsdeck.core.jobs import job
from opsdeck.core.queue import task_session
from opsdeck.incidents.service import notifications, outbound
from opsdeck.settings import get_settings

DAY = 86400.0


@job(notifications.SEND_JOB)
def send_notification(notification_id: str) -> str:
    """Send one notification mail; a transient SMTP failure runs it again later (bounded)."""
    return notifications.deliver(task_session, get_settings(), notification_id)


@job(outbound.DELIVER_JOB)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt at one outbound webhook delivery; retried on core.webhooks' schedule."""
    return outbound.deliver(task_session, get_settings(), delivery_id)


@job("incidents.remind_follow_ups", every=DAY)
def remind_follow_ups() -> int:
    """Mail the owners of follow-ups due or overdue (once a day each)."""
    with task_session() as session:
        return notifications.remind_follow_ups(session, utcnow().date())


@job("incidents.send_daily_digest", every=DAY)
def send_daily_digest() -> int:
    """Queue each user's daily digest of the open incidents that changed."""
    with task_session() as session:
        return notifications.queue_digests(session, utcnow())
