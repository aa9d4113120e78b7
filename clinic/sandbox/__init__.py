"""Local stand-in for Meta's WhatsApp Cloud API: Graph API, signed webhooks, a test API and a phone page.

`python -m clinic.sandbox` serves it (port 5070 by default); docs/sandbox.md documents the test API.
"""
