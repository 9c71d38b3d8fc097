"""Device services: what users do with a camera, built on the session
(importing new shots, listing every object).  Imports only session-level
layers and below; the fs and cli layers use these."""
