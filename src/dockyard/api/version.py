"""What this engine says it is: its version strings and the API versions it speaks.

API 1.51 is Docker Engine 28.3's; the engine reports that release with dockyard's own version
as a pre-release suffix, so that tools comparing Docker versions see the release whose API
they get, and people see that it is dockyard.
"""

from __future__ import annotations

import platform

from dockyard import __version__
from dockyard.http.router import MAX_API_VERSION, MIN_API_VERSION, format_api_version

API_VERSION = format_api_version(MAX_API_VERSION)       # "1.51"
MIN_API_VERSION_TEXT = format_api_version(MIN_API_VERSION)  # "1.24"
DOCKER_RELEASE = "28.3.0"                                 # the Docker release of API 1.51
ENGINE_VERSION = f"{DOCKER_RELEASE}-dockyard.{__version__}"
PLATFORM_NAME = "Dockyard Engine"
# Docker reports the Go toolchain; ours is the interpreter (nothing parses this field).
LANGUAGE_VERSION = f"{platform.python_implementation()} {platform.python_version()}"


def common_headers() -> list[tuple[str, str]]:
    """The fields dockerd puts on every response (api/server/middleware/version.go)."""
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
            ("Ostype", "linux"), ("Server", f"Docker/{ENGINE_VERSION} (linux)")]
