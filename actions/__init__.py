"""Rasa custom actions: thin adapters from the dialogue to the clinic core (one module per capability).

The action server imports this package first: in production with demo secrets (or no encryption
key) it exits here, naming the problems, before serving a single patient.
"""

from clinic.settings import require_safe_to_start

require_safe_to_start()
