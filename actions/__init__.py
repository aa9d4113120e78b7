"""Rasa custom actions: thin adapters from the dialogue to the clinic core (one module per capability)."""
