"""The Docker Engine REST API: routes that parse HTTP into engine calls; no business logic."""
