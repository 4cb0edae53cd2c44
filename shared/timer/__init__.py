"""The timer run: due accounts verified, renewals advanced, housekeeping."""
