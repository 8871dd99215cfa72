"""docker-compose.yaml as compose reads it: its variables interpolated from an environment (.env)."""

from __future__ import annotations

import re
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
