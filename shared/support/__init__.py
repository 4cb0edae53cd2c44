"""Tiny helpers with no project imports: GUIDs, time formats, strict JSON, lock stripes and
the one-line description of a failure."""
