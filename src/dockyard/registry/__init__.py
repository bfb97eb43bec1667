"""Distribution: the registry client (resolve, pull, push, auth challenges) and our registry
server (the OCI distribution spec on the content store). See docs/DESIGN.md."""
