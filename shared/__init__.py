"""The application below the HTTP edge: settings, stores, certificates, identity, verification."""
