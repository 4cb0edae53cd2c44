"""The one outbound HTTP policy (deadlines, retries, Retry-After) and its Azure SDK pipeline."""
