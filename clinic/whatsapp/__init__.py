"""WhatsApp Cloud API: webhook parsing, the one sending client, and the Rasa channel."""
