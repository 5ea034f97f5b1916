"""Reading a claim spec: validation (schema, CEL where no API server runs, engine rules), defaults, references."""
