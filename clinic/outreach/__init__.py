"""Outreach: messages the clinic starts (appointment reminders), sent by `python -m clinic.outreach`.

Every outreach message goes through the one sending client's outbox, only to contacts with the
matching consent, and never during quiet hours (`clinic.outreach.quiet_hours`).
"""
