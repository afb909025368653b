"""The Lakehouse reader actor: inbox files and context in, numbered items out."""
