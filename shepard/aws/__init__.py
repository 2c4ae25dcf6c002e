"""The only CLI code that creates boto3 sessions and clients (credentials, roles, typed calls)."""
