"""The OCI runtime: containers from namespaces and cgroups (see DESIGN.md). Imports only spec/, linux/ and errdefs."""
