"""The credentials Secret and everything that holds a secret: passwords, templates, ownership, redaction."""
