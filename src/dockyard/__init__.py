"""dockyard: a container engine in Python that speaks the Docker Engine API.

The package root is a leaf every layer may import: it holds what the engine is, and nothing
that imports. The engine reports the Docker release whose API it speaks (1.51 is Docker Engine
28.3's) with dockyard's own version as a pre-release suffix, so that tools comparing Docker
versions see the release whose API they get, and people see that it is dockyard: in
``/version`` and ``/info`` (api/), and as the ``docker_version`` of the images it imports and
commits (image/), where dockerd writes its own.
"""

__version__ = "0.1.0"
DOCKER_RELEASE = "28.3.0"  # the Docker release of API 1.51 (dockyard.http.router.MAX_API_VERSION)
ENGINE_VERSION = f"{DOCKER_RELEASE}-dockyard.{__version__}"
