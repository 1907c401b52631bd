"""`hoard daemon --install`: the service definition that starts the daemon with the session —
a systemd user unit (Linux), a launchd agent (macOS), or a cron line (anything else)."""

from __future__ import annotations

import os
import plistlib
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass

PLATFORMS = ("systemd", "launchd", "cron")
LABEL = "org.hoard.daemon"


@dataclass(frozen=True)
class Service:
    platform: str
    text: str
    #: Where --write puts it; None when it is not a file of its own (cron).
    path: str | None
    #: What to run afterwards.
    next_steps: tuple[str, ...]


def detect_platform() -> str:
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux") and os.path.isdir("/run/systemd/system"):
        return "systemd"
    return "cron"


def service(
    platform: str, command: list[str], env: Mapping[str, str], home: str, output: str
) -> Service:
    """``command`` runs the daemon in the foreground (absolute paths); ``env`` holds the few
    variables it needs (the log file), never credentials; ``output`` takes what the daemon
    prints (launchd, cron; systemd keeps it in the journal)."""
    if platform == "systemd":
        return _systemd(command, env, home)
    if platform == "launchd":
        return _launchd(command, env, home, output)
    if platform == "cron":
        return _cron(command, env, output)
    raise ValueError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")


def _systemd(command: list[str], env: Mapping[str, str], home: str) -> Service:
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    lines = [
        "[Unit]",
        "Description=hoard: run archive workflows on their schedules",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={shlex.join(command)}",
        *(f'Environment="{k}={v}"' for k, v in sorted(env.items())),
        "Restart=on-failure",
        "RestartSec=60",
        "# SIGTERM: the current file finishes, the job is recorded as interrupted",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=600",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return Service(
        "systemd",
        "\n".join(lines),
        os.path.join(config_home, "systemd", "user", "hoard.service"),
        (
            "systemctl --user daemon-reload",
            "systemctl --user enable --now hoard.service",
            "loginctl enable-linger $USER   # keep it running while you are logged out",
        ),
    )


def _launchd(command: list[str], env: Mapping[str, str], home: str, log_file: str) -> Service:
    plist = {
        "Label": LABEL,
        "ProgramArguments": command,
        "EnvironmentVariables": dict(env),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
    }
    path = os.path.join(home, "Library", "LaunchAgents", f"{LABEL}.plist")
    return Service(
        "launchd",
        plistlib.dumps(plist).decode(),
        path,
        (f"launchctl bootstrap gui/$(id -u) {shlex.quote(path)}",),
    )


def _cron(command: list[str], env: Mapping[str, str], log_file: str) -> Service:
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    line = f"@reboot {assignments + ' ' if assignments else ''}{shlex.join(command)}"
    line += f" >> {shlex.quote(log_file)} 2>&1"
    return Service(
        "cron",
        line + "\n",
        None,
        ("crontab -e   # add the line above: it starts the daemon at boot",),
    )
