"""Custom Rasa NLU components of the clinic assistant."""
