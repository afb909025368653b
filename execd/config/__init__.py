"""The config file: its schema, its loading, and what each key means."""
