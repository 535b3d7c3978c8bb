"""A character's life on one connection: entities, turns, the conversation, memory use, hearing."""
