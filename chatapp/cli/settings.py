"""``chatapp config``: show the merged settings, where the file is, change a value.

Secrets (``backend.api_key``) are masked by ``show`` and saved by ``set`` into ``keys.toml``
(0600), never into ``config.toml``; ``set backend.api_key -`` reads the key from stdin, so it
stays out of the shell history and the process list.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chatapp.errors import ConfigError, UsageError

config_app = typer.Typer(help="Settings (config.toml, CHATAPP_* variables).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The settings in force: defaults < config.toml < CHATAPP_* environment."""
    from chatapp.config import load_settings, masked_dump, settings_as_toml

    settings = load_settings()
    if as_json:
        print(json.dumps(masked_dump(settings), ensure_ascii=False, indent=2))
    else:
        print(settings_as_toml(settings), end="")


@config_app.command("path")
def path() -> None:
    """Where config.toml lives (it may not exist until you save a setting)."""
    from chatapp import paths

    print(paths.config_file())


@config_app.command("set")
def set_value(
    key: Annotated[str, typer.Argument(help="section.field, e.g. generation.temperature")],
    value: Annotated[str, typer.Argument(help="The new value (TOML syntax; bare words are text).")],
) -> None:
    """Change one setting in config.toml."""
    import tomllib

    from pydantic import ValidationError

    from chatapp import paths
    from chatapp.cli.stdin_text import check_text, read_stdin_text
    from chatapp.config import MASK, SECRET_FIELDS, load_settings, save_settings

    section, _, field = key.partition(".")
    settings = load_settings()
    if not field or section not in type(settings).model_fields:
        raise UsageError(f"setting {key!r}: use section.field, e.g. generation.temperature")
    target = getattr(settings, section)
    if field not in type(target).model_fields:
        known = ", ".join(type(target).model_fields)
        raise UsageError(f"setting {key!r}: no such field (known in {section}: {known})")
    secret = (section, field) in SECRET_FIELDS
    if secret and value == "-":
        value = read_stdin_text().strip()
        if not value:
            raise UsageError(f"setting {key!r}: nothing on stdin")
    check_text(value, f"setting {key!r}")
    try:
        parsed = value if secret else tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    try:
        setattr(target, field, parsed)
    except ValidationError as exc:
        raise ConfigError(f"setting {key!r}: {exc.errors()[0]['msg']}") from None
    saved = save_settings(settings)
    if secret:
        print(f"{key} = {MASK!r}  (saved to {paths.keys_file()}, readable only by you)")
    else:
        print(f"{key} = {getattr(target, field)!r}  (saved to {saved})")
