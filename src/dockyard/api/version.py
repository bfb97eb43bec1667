"""What this engine says it is: its version strings and the API versions it speaks.

The engine's version (ENGINE_VERSION, Docker's release of API 1.51 with dockyard's version as a
pre-release suffix) lives in the package root, which the image layer reads too (an image's
``docker_version``); it is named here as well for the API's modules.
"""

from __future__ import annotations

import platform

from dockyard import DOCKER_RELEASE, ENGINE_VERSION, __version__
from dockyard.http.router import MAX_API_VERSION, MIN_API_VERSION, format_api_version

__all__ = ["API_VERSION", "DOCKER_RELEASE", "ENGINE_VERSION", "LANGUAGE_VERSION",
           "MIN_API_VERSION_TEXT", "PLATFORM_NAME", "__version__", "common_headers"]

API_VERSION = format_api_version(MAX_API_VERSION)       # "1.51"
MIN_API_VERSION_TEXT = format_api_version(MIN_API_VERSION)  # "1.24"
PLATFORM_NAME = "Dockyard Engine"
# Docker reports the Go toolchain; ours is the interpreter (nothing parses this field).
LANGUAGE_VERSION = f"{platform.python_implementation()} {platform.python_version()}"


def common_headers() -> list[tuple[str, str]]:
    """The fields dockerd puts on every response (api/server/middleware/version.go)."""
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
            ("Ostype", "linux"), ("Server", f"Docker/{ENGINE_VERSION} (linux)")]
