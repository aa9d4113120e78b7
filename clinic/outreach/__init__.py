"""Outreach: messages the clinic starts, sent by `python -m clinic.outreach`: appointment reminders
(`reminders`), waitlist offers for freed slots (`backfill`), and after the visit the specialty's
follow-up, the satisfaction question and, after a no-show, an offer to rebook (`followups`).

Every outreach message goes through the one sending client's outbox, only to contacts with the
matching consent, and never during quiet hours (`clinic.outreach.quiet_hours`).
"""
