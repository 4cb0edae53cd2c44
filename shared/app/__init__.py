"""The HTTP edge, the composition root and the app's own health."""
