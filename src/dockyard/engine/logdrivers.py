"""Log drivers: which ones a container may name, their options, and the extra attributes.

Owns the daemon's side of `HostConfig.LogConfig`: the drivers offered (``json-file``, the
default; ``local``; ``none``; ``syslog``; ``gelf``; ``fluentd``), their options checked at
create as dockerd checks them, where each driver's file lives, and the attributes written with every entry (``labels``,
``labels-regex``, ``env``, ``env-regex`` and the ``tag`` template, as dockerd's loginfo.go and
loggerutils compute them). The monitor writes the file (engine/monitor/jsonlog.py); `docker
logs` reads it (engine/logs.py).

``local`` is dockerd's rotated, compressed driver for logs that only `docker logs` reads. Its
on-disk format is internal to Docker; here its file holds the same JSON lines as json-file,
under ``local-logs/container.log``, with dockerd's local defaults (20 MB, 5 files,
compressed). ``none`` keeps nothing: `docker logs` answers 501 as dockerd does.

``syslog``, ``gelf`` and ``fluentd`` send every line to a server from the monitor
(engine/monitor/syslogwriter.py, gelfwriter.py and fluentdwriter.py own their options and
messages; remotelog.py the sending) and, as dockerd 20.10's "dual logging", also keep a local
cache for `docker logs` (``container-cached.log``, local's format and defaults,
``cache-max-size``/``cache-max-file``/``cache-compress``), unless ``cache-disabled`` is true:
then `docker logs` answers 501. The ``cache-*`` options are every driver's, as in dockerd.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote_plus

from dockyard.engine.monitor import gelfwriter, syslogwriter
from dockyard.engine.monitor.jsonlog import FALSE_WORDS, TRUE_WORDS, parse_log_options
from dockyard.errdefs import InvalidArgument, System, Unsupported

DRIVERS = ("json-file", "local", "none", "syslog", "gelf", "fluentd")
REMOTE = ("syslog", "gelf", "fluentd")  # sent by the monitor; `docker logs` reads the cache
LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}
_LOCAL_OPTS = frozenset(LOCAL_DEFAULTS)
# every driver takes these (the monitor writes as it reads; it never holds the container back
# on a full buffer, so both modes behave as non-blocking with an unbounded buffer would)
_ANY_DRIVER = ("mode", "max-buffer-size", "cache-disabled", "cache-max-size",
               "cache-max-file", "cache-compress")
_CACHE_PREFIX = "cache-"
_RAM_SIZE = re.compile(r"^\d+(\.\d+)?\s*([kKmMgGtTpP][iI]?[bB]?|[bB])?$")
_TAG_FIELD = re.compile(r"\{\{\s*\.([A-Za-z]+)\s*\}\}")


def driver_of(log_config: Mapping | None) -> str:
    return (log_config or {}).get("Type") or "json-file"


def validate(log_config: Mapping | None) -> None:
    """At create, as dockerd's ValidateLogOpts: a known driver, options it takes."""
    if log_config is not None and not isinstance(log_config, Mapping):
        raise InvalidArgument("HostConfig.LogConfig: expected an object")
    driver = driver_of(log_config)
    opts = (log_config or {}).get("Config") or {}
    if not isinstance(opts, Mapping) or not all(isinstance(v, str) for v in opts.values()):
        raise InvalidArgument("HostConfig.LogConfig.Config: expected an object of strings")
    if driver not in DRIVERS:
        raise InvalidArgument(f'error looking up logging plugin {driver}: plugin "{driver}" '
                              "not found")
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidArgument(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise InvalidArgument("logger: max-buffer-size option is only supported with "
                                  "'mode=non-blocking'")
        if not _RAM_SIZE.match(opts["max-buffer-size"]):
            raise InvalidArgument("error parsing option max-buffer-size: invalid size: "
                                  f"'{opts['max-buffer-size']}'")
    if (disabled := opts.get("cache-disabled", "")) and disabled not in TRUE_WORDS | FALSE_WORDS:
        raise InvalidArgument(f"invalid value for option cache-disabled: {disabled}")
    opts = {k: v for k, v in opts.items() if k not in _ANY_DRIVER}
    if driver == "json-file":
        parse_log_options(dict(opts))
    elif driver == "local":
        for key in opts:
            if key not in _LOCAL_OPTS:
                raise InvalidArgument(f"unknown log opt '{key}' for log driver local")
        parse_log_options({**LOCAL_DEFAULTS, **opts})
    elif driver == "syslog":
        syslogwriter.validate(opts)
    elif driver == "gelf":
        gelfwriter.validate(opts)
    elif driver == "fluentd":  # msgpack stays out of the daemon until a fluentd container
        from dockyard.engine.monitor import fluentdwriter

        fluentdwriter.validate(opts)


def log_file(driver: str, container_dir: str, container_id: str) -> str:
    """Where the driver keeps the container's log; "" for ``none``."""
    if driver == "local":
        return os.path.join(container_dir, "local-logs", "container.log")
    if driver == "none":
        return ""
    if driver in REMOTE:
        return os.path.join(container_dir, "container-cached.log")
    return os.path.join(container_dir, f"{container_id}-json.log")


def cache_enabled(log_config: Mapping | None) -> bool:
    """Whether a driver that cannot be read keeps the local cache (dockerd's ShouldUseCache)."""
    value = ((log_config or {}).get("Config") or {}).get("cache-disabled", "")
    return value not in TRUE_WORDS


def monitor_options(log_config: Mapping | None) -> dict[str, str]:
    """The options the monitor's writer takes (rotation, compression)."""
    config = (log_config or {}).get("Config") or {}
    if driver_of(log_config) in REMOTE:  # the cache: local's defaults, cache-* options
        cache = {k[len(_CACHE_PREFIX):]: v for k, v in config.items()
                 if k in _ANY_DRIVER and k.startswith(_CACHE_PREFIX) and k != "cache-disabled"}
        try:  # dockerd takes bad cache-* values at create; its cache keeps its defaults then
            parse_log_options({**LOCAL_DEFAULTS, **cache})
        except InvalidArgument:
            cache = {}
        return {**LOCAL_DEFAULTS, **cache}
    opts = {k: v for k, v in config.items() if k not in _ANY_DRIVER}
    if driver_of(log_config) == "local":
        return {**LOCAL_DEFAULTS, **opts}
    return opts


def readable(log_config: Mapping | None) -> bool:
    """Whether `docker logs` has a file to read for this configuration."""
    driver = driver_of(log_config)
    return driver != "none" and (driver not in REMOTE or cache_enabled(log_config))


def reading_options(log_config: Mapping | None) -> dict[str, str]:
    """What `docker logs` needs to find the rotated files; 501 for a driver without a file."""
    if not readable(log_config):
        raise Unsupported("configured logging driver does not support reading")
    return {k: v for k, v in monitor_options(log_config).items()
            if k in ("max-size", "max-file", "compress")}


def remote_target(log_config: Mapping | None, info: Mapping[str, str], *,
                  labels: Mapping[str, str], env: list[str], created: str) -> dict | None:
    """The monitor's ``remote_log`` (SpawnRequest) for a syslog, gelf or fluentd container,
    else None: where to send and what each message carries, computed once here. The tag
    defaults to the short id in all three, as dockerd's; syslog's PID is the daemon's."""
    driver = driver_of(log_config)
    if driver not in REMOTE:
        return None
    opts = (log_config or {}).get("Config") or {}
    tag = render_tag(opts.get("tag") or "{{.ID}}", info)
    # dockerd's ExtraAttributes, for gelf and fluentd: labels and env alone (the tag is a
    # field of its own there)
    attrs = {} if driver == "syslog" else attributes(
        {k: v for k, v in opts.items() if k != "tag"}, labels=labels, env=env, tag_info=info)
    try:
        if driver == "syslog":
            return {"driver": "syslog", **syslogwriter.target(
                opts, tag=tag, hostname=info["Hostname"], pid=os.getpid()).to_json()}
        if driver == "gelf":
            fields = {"container_id": info["FullID"], "container_name": info["Name"],
                      "image_id": info["ImageFullID"], "image_name": info["ImageName"],
                      "command": info["Command"], "tag": tag, "created": created}
            return gelfwriter.target(opts, fields=fields, attrs=attrs,
                                     hostname=info["Hostname"]).to_json()
        from dockyard.engine.monitor import fluentdwriter

        return fluentdwriter.target(opts, tag=tag, container_id=info["FullID"],
                                    container_name="/" + info["Name"], attrs=attrs)
    except InvalidArgument as exc:  # e.g. a syslog unix path that went away since the create
        raise System(f"failed to initialize logging driver: {exc}") from None


def attributes(opts: Mapping[str, str], *, labels: Mapping[str, str], env: list[str],
               tag_info: Mapping[str, str]) -> dict[str, str]:
    """The ``attrs`` of every entry (loginfo.go ExtraAttributes, plus ``tag``). A bad regexp
    or tag template fails the start, as dockerd's logger initialisation does."""
    extra: dict[str, str] = {}
    for name in filter(None, (opts.get("labels") or "").split(",")):
        if name in labels:
            extra[name] = labels[name]
    if pattern := opts.get("labels-regex"):
        regex = _compile(pattern)
        extra.update({k: v for k, v in labels.items() if regex.search(k)})
    env_map = dict(e.split("=", 1) for e in env if "=" in e)
    for name in filter(None, (opts.get("env") or "").split(",")):
        if name in env_map:
            extra[name] = env_map[name]
    if pattern := opts.get("env-regex"):
        regex = _compile(pattern)
        extra.update({k: v for k, v in env_map.items() if regex.search(k)})
    if template := opts.get("tag"):
        extra["tag"] = render_tag(template, tag_info)
    return extra


def tag_info(*, container_id: str, name: str, image_id: str, image_name: str,
             command: str) -> dict[str, str]:
    """The fields a ``tag`` template may name (logger.Info's methods)."""
    return {"ID": container_id[:12], "FullID": container_id, "Name": name.lstrip("/"),
            "ImageID": image_id[:12], "ImageFullID": image_id, "ImageName": image_name,
            "DaemonName": "docker", "Command": command, "Hostname": os.uname().nodename}


def render_tag(template: str, info: Mapping[str, str]) -> str:
    """``{{.Field}}`` references and literal text. Pipelines and functions are refused."""
    def field(m: re.Match) -> str:
        if m.group(1) not in info:
            raise System(f'failed to initialize logging driver: template: log-tag: executing '
                         f'"log-tag" at <.{m.group(1)}>: can\'t evaluate field {m.group(1)} '
                         "in type *logger.Info")
        return info[m.group(1)]

    out = _TAG_FIELD.sub(field, template)
    if "{{" in out or "}}" in out:
        raise System("failed to initialize logging driver: template: log-tag: only {{.Field}} "
                     f"references are supported in a log tag: {template!r}")
    return out


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise System(f"failed to initialize logging driver: error parsing regexp: {exc}") from None


def details_prefix(attrs: Mapping[str, str] | None) -> bytes:
    """`docker logs --details`: ``k=v,k2=v2 `` with keys sorted and both sides query-escaped
    (what dockerd puts before each line); a lone space without attributes."""
    pairs = ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted((attrs or {}).items()))
    return pairs.encode() + b" "
