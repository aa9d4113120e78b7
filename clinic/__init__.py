"""Clinic core: the rules of the clinic in plain Python and SQLAlchemy (no Rasa, no HTTP)."""
