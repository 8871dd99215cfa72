"""docker-compose.yaml as compose reads it: its variables interpolated from an environment (.env)."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\w+")


def interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` with compose's ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (defaults may hold more
    of them) and ``${VAR:?message}``, which fails naming the variable when it is unset or empty."""
    out, at = [], 0
    while (start := text.find("$", at)) >= 0:
        out.append(text[at:start])
        if text.startswith("$$", start):
            out.append("$")
            at = start + 2
        elif text.startswith("${", start):
            end = _closing(text, start + 2)
            name, operator, rest = re.match(r"(\w+)(?:(:[-?])(.*))?$", text[start + 2 : end], re.S).groups()
            value = env.get(name, "")
            if operator == ":?" and not value:
                raise KeyError(f"{name}: {rest}")
            out.append(value or (interpolate(rest, env) if operator == ":-" else ""))
            at = end + 1
        else:
            name = NAME.match(text, start + 1)
            out.append(env.get(name[0], "") if name else "$")
            at = name.end() if name else start + 1
    return "".join(out) + text[at:]


def _closing(text: str, at: int) -> int:
    """Where the ``${`` that ends just before ``at`` closes, past any nested in its default."""
    depth = 1
    while depth:
        brace = re.compile(r"\$\{|\}").search(text, at)
        depth += 1 if brace[0] == "${" else -1
        at = brace.end()
    return at - 1


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file such as ``.env.example`` (quotes around a value removed)."""
    env = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"(\w+)=(.*)$", line):
            value = match[2]
            env[match[1]] = value[1:-1] if value[:1] in "'\"" and value[-1:] == value[:1] else value
    return env


def load(env: dict[str, str], path: Path = ROOT / "docker-compose.yaml") -> dict:
    """The compose file with every string interpolated from ``env``, as ``docker compose config`` shows it."""

    def walk(node):
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return interpolate(node, env) if isinstance(node, str) else node

    return walk(yaml.safe_load(path.read_text()))


class OnThisMachine:
    """The compose file's Airflow services as processes of this machine, as its containers would run them.

    Each service gets its own copy of what the Dockerfile puts in the image under ``<home>/opt/airflow``,
    which is its ``AIRFLOW_HOME`` (a file one writes there, such as airflow.cfg, the others do not see);
    named volumes are folders they share; the environment is the file's, interpolated from ``env`` (the
    ``.env``), with only host names and ports moved to the local stand-ins (``hosts``: compose's
    ``host:port`` → this machine's) and ``/opt/airflow`` to each copy. Commands run as the image's
    entrypoint runs them: ``bash`` and ``python`` as they are, anything else as ``airflow <command>``.
    """

    def __init__(self, folder: Path, env: dict[str, str], hosts: dict[str, str], extra_env: dict[str, str]):
        self.folder, self.hosts, self.extra_env = folder, hosts, extra_env
        self.compose = load(env)
        self.image = folder / "image" / "opt" / "airflow"
        self.processes: dict[str, subprocess.Popen] = {}
        _copy_what_the_dockerfile_copies(self.image)

    def command(self, name: str, home: Path) -> list[str]:
        service = self.compose["services"][name]
        command = service["command"]
        command = shlex.split(command) if isinstance(command, str) else list(command)
        if service.get("entrypoint") == "/bin/bash":
            command = ["bash", *command]
        elif command[0] not in ("bash", "python"):
            command = ["airflow", *command]
        return [self._local(part, home).replace("/entrypoint airflow", "airflow") for part in command]

    def environment(self, name: str, home: Path) -> dict[str, str]:
        service = self.compose["services"][name]
        return {
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(home),  # the image's ENV
            **{key: self._local(str(value), home) for key, value in service["environment"].items()},
            **self.extra_env,
        }

    def start(
        self, name: str, instance: str | None = None, arguments: tuple[str, ...] = (), **settings: str
    ) -> subprocess.Popen:
        """Start service ``name`` (a replica: ``instance``) in a container's stead; ``arguments`` and
        ``settings`` (environment variables) give it ports of its own."""
        instance = instance or name
        home = self.folder / instance / "opt" / "airflow"
        if not home.exists():
            shutil.copytree(self.image, home, symlinks=True)
            for volume in self.compose["services"][name].get("volumes", []):
                source, target = volume.split(":")[:2]
                shared = ROOT / source if source.startswith("./") else self.folder / "volumes" / source
                shared.mkdir(parents=True, exist_ok=True)
                (home / Path(target).relative_to("/opt/airflow")).symlink_to(shared)
        with (self.folder / f"{instance}.log").open("ab") as log:
            process = subprocess.Popen(
                [*self.command(name, home), *arguments],
                env={**self.environment(name, home), **settings},
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its task processes with it, stopped together
            )
        self.processes[instance] = process
        return process

    def log(self, instance: str) -> str:
        return (self.folder / f"{instance}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def _local(self, text: str, home: Path) -> str:
        for there, here in self.hosts.items():
            text = text.replace(there, here)
        return text.replace("/opt/airflow", str(home))


def _copy_what_the_dockerfile_copies(image: Path) -> None:
    """Each ``COPY <source> /opt/airflow/...`` of the Dockerfile, less what .dockerignore leaves out."""
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(ROOT)
        return {
            name
            for name in names
            if any(
                fnmatch.fnmatch(str(relative / name), pattern.removeprefix("**/"))
                or fnmatch.fnmatch(name, pattern.removeprefix("**/"))
                for pattern in ignored
            )
        }

    for source, target in re.findall(
        r"^COPY (?:--chown=\S+ )?(\S+) (/opt/airflow/\S+)$", (ROOT / "Dockerfile").read_text(), re.M
    ):
        destination = image / Path(target).relative_to("/opt/airflow")
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, destination, ignore=ignore)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, destination)
