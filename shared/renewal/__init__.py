"""Moving an account to a new credential: rotations and their steps."""
