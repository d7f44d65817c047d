// Placeholder so the target builds until the schema is generated.
