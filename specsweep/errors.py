"""The one exception type a user should see as a sentence, not a traceback."""


class ConfigError(ValueError):
    """Bad input: the message is one sentence naming the parameter, the bad value and what is allowed."""
