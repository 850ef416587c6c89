"""Typed settings: defaults < ``config.toml`` < ``CHATAPP_*`` environment < CLI flags.

Nested sections use ``__`` in environment names, e.g. ``CHATAPP_GENERATION__TEMPERATURE=0.2``.
``chatapp config show`` prints the merged result and ``chatapp config path`` the file.

Secrets (``backend.api_key``) never go into ``config.toml``: they live in ``keys.toml`` beside
it (0600), between the environment and ``config.toml`` in precedence, and ``config show``
masks them. Saving writes only what changed since the settings were loaded: a default, a
``CHATAPP_*`` variable or a command-line flag in force is never copied into the file, so a
later change of a default still reaches the user, and ``--api-key`` stays on the command line.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from chatapp import paths
from chatapp.errors import ConfigError

if TYPE_CHECKING:
    from chatapp.config_repair import SettingsRepair

SECRET_FIELDS: frozenset[tuple[str, str]] = frozenset({("backend", "api_key"), ("mcp", "headers")})
"""(section, field) of the settings kept in the keys file and masked when shown."""
KEYS_FILE = "keys.toml"
MASK = "********"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    name: str = "smollm2-135m"
    """Model to chat with: a registry/catalog name (``chatapp models list``) or a path to a GGUF."""
    n_ctx: int = Field(4096, ge=256)
    """Context size asked for; the engine uses min(this, the model's trained context)."""
    n_threads: int | None = Field(None, ge=1)
    """CPU threads for llama.cpp, used exactly; unset fits each reply to the cores other
    programs leave free, up to every usable core, and drops one when decoding collapses."""
    n_gpu_layers: int | None = None
    """Layers to offload to the GPU; unset means all when llama.cpp has a GPU backend, else 0."""
    main_gpu: int = Field(0, ge=0)
    """Which GPU holds the model when there are several."""
    tensor_split: list[float] | None = None
    """How to split the model across GPUs, e.g. [0.5, 0.5]."""
    n_batch: int = Field(512, ge=16)
    """Prompt tokens evaluated per batch."""
    kv_cache_mb: int = Field(128, ge=0)
    """Disk kept for the model's KV state of recent conversations, so a follow-up in a new
    process (``ask --continue``, reopening a chat) does not read the conversation again;
    least recently used states go first, a state larger than the whole limit is not kept
    (raise it for big models); 0 turns it off (``chatapp cache clear`` empties it)."""


class BackendSettings(_Section):
    kind: Literal["llama_cpp", "openai", "fake"] = "llama_cpp"
    """``llama_cpp`` runs the model in-process; ``openai`` talks to an OpenAI-compatible server;
    ``fake`` replays canned replies (demos and tests)."""
    base_url: str = "http://127.0.0.1:8080/v1"
    """Base URL of the OpenAI-compatible server (llama.cpp server, vLLM, Ollama)."""
    api_key: str | None = None
    """API key sent as a bearer token, if the server wants one."""
    model: str | None = None
    """Model name the server knows; unset means the server's first model."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds to wait for the server's answer, and then for each next piece of a reply, before
    giving up; a whole reply gets ten times this."""


class GenerationSettings(_Section):
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.1, ge=0.0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = None
    """Fixed seed for reproducible replies; unset means a fresh random seed each reply."""
    thinking: Literal["default", "on", "off"] = "default"
    """For models that think before answering: "on" / "off" set their chat template's switch;
    "default" keeps the model's own default (thinking off under an output constraint)."""
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    """For models whose template takes a reasoning effort (gpt-oss)."""


class ChatSettings(_Section):
    system_prompt: str = "You are a helpful, concise assistant."
    """System prompt for new conversations."""
    template: str = "chat"
    """Default prompt template for the chat screen."""


class RetrievalSettings(_Section):
    embedder: str = "auto"
    """Embedder for new collections: ``auto`` (each chunk by its language: English and code by
    the bundled all-MiniLM-L6-v2, Korean and other scripts by the bundled multilingual USE),
    ``bundled`` (MiniLM for everything), ``use-multilingual``, ``fast`` (static embeddings
    distilled from MiniLM), or any sentence-transformers model name. Each collection keeps the
    one it was made with (``chatapp index --reembed`` switches it)."""
    chroma_url: str | None = None
    """A Chroma server (``chroma run``) instead of the embedded store, e.g. http://127.0.0.1:8000."""
    collection: str = "default"
    top_k: int = Field(5, ge=1, le=50)
    source_tokens: int = Field(340, ge=0)
    """Tokens the sources of a grounded answer may take together: each keeps its heading, then
    the sentences that best answer the question, from all sources together (0: whole chunks).
    Fewer tokens to read is a sooner answer; ``ask --json`` shows what was kept."""
    min_score: float = 0.25
    """Relevance threshold: chunks whose dense similarity is below it are not used as sources."""
    chunk_tokens: int = Field(200, ge=32)
    chunk_overlap: int = Field(32, ge=0)


class UISettings(_Section):
    theme: str = "textual-dark"
    collection: str | None = None
    """The document collection last picked in the chat (Ctrl+F), remembered between runs."""
    documents: bool = False
    """Whether the chat answers from ``collection`` (Alt+D switches it), remembered too."""


class ToolSettings(_Section):
    offered: list[str] = Field(default_factory=list)
    """Tool servers (or ``SERVER.TOOL`` names) a new chat offers the model: ``documents``,
    ``clock``, ``math`` and the MCP servers of ``mcp.json``; empty offers none
    (``ask --tools`` and the chat's toggle choose per conversation)."""
    rules: dict[str, Literal["allow", "deny"]] = Field(default_factory=dict)
    """Per tool: ``allow`` runs its calls without asking, ``deny`` refuses them ("Always allow"
    in the chat's approval card adds one; settings list and revoke them)."""
    allow_read_only: bool = True
    """Let the read-only built-ins (``documents.search``, ``clock.now``, ``math.calculate``)
    run without asking; MCP tools always need a rule or a yes."""
    max_steps: int = Field(8, ge=1, le=64)
    """Model calls in one turn before the tool loop stops (call → result → model …)."""
    constrain: Literal["auto", "always", "never"] = "auto"
    """Constrain in-process replies with a grammar to a plain answer or valid calls to the
    offered tools; ``auto`` does so for small models."""
    max_result_tokens: int = Field(1024, ge=16)
    """A tool result longer than this is cut (with a note) before the model reads it."""
    call_timeout_s: float = Field(60.0, gt=0)
    """Seconds one call may run."""
    start_timeout_s: float = Field(20.0, gt=0)
    """Seconds an MCP server may take to start and list its tools."""


class McpSettings(_Section):
    headers: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Per MCP server of ``mcp.json``: its credential headers (``Authorization`` …), kept in
    ``keys.toml`` by ``chatapp mcp add --header`` and never in ``mcp.json``."""


class Settings(BaseSettings):
    """All of chatapp's settings."""

    model_config = SettingsConfigDict(
        env_prefix="CHATAPP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    ui: UISettings = Field(default_factory=UISettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)

    _toml_path: ClassVar[Path | None] = None
    _keys_path: ClassVar[Path | None] = None
    _loaded: dict[str, Any] | None = PrivateAttr(default=None)
    """What these settings were when loaded: ``save_settings`` writes only the differences."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._keys_path is not None and cls._keys_path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._keys_path))
        if cls._toml_path is not None and cls._toml_path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def load_settings(overrides: dict[str, Any] | None = None, path: Path | None = None) -> Settings:
    """Load settings; ``overrides`` (nested dict, e.g. from CLI flags) win over everything.

    Raises ConfigError naming the file and the field when the file or a value is invalid.
    """
    toml_path = path or paths.config_file()
    keys_path = toml_path.with_name(KEYS_FILE)
    for file in (toml_path, keys_path):
        _read_toml(file)
    for file in (toml_path, keys_path):
        paths.make_private(file)
    Settings._toml_path, Settings._keys_path = toml_path, keys_path
    try:
        settings = Settings(**_deep_merge({}, overrides or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        field = ".".join(loc)
        source = _blame(loc, overrides or {}, toml_path)
        raise ConfigError(f"setting '{field}' ({source}): {first['msg']}") from None
    finally:
        Settings._toml_path = Settings._keys_path = None
    settings._loaded = settings.model_dump(mode="json")
    return settings


def _read_toml(file: Path) -> dict[str, Any]:
    """The file's tables ({} when it does not exist); ConfigError naming it when it is not TOML."""
    if not file.exists():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror})") from None


def _blame(loc: list[str], overrides: dict[str, Any], toml_path: Path) -> str:
    """Which source gave the bad value: a command-line flag, an environment variable, the file."""
    node: Any = overrides
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None:
        return "from the command line"
    env_name = "CHATAPP_" + "__".join(p.upper() for p in loc)
    if env_name in os.environ:
        return f"from {env_name}"
    return f"in {toml_path}"


def changed_settings(settings: Settings) -> dict[tuple[str, str], Any]:
    """(section, field) → new value for every setting that differs from what ``settings`` were
    loaded with (from the defaults, for settings not made by ``load_settings``)."""
    before = settings._loaded
    if before is None:
        before = Settings.model_construct().model_dump(mode="json")
    now = settings.model_dump(mode="json")
    return {
        (section, name): value
        for section, fields in now.items()
        for name, value in fields.items()
        if before.get(section, {}).get(name, _MISSING) != value
    }


_MISSING = object()


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings the user changed into ``config.toml`` (secrets into ``keys.toml``),
    keeping everything else the files hold; atomic, 0600. Returns the path of config.toml."""
    toml_path = path or paths.config_file()
    keys_path = toml_path.with_name(KEYS_FILE)
    config_data = _table_for_update(toml_path)
    keys_data = _table_for_update(keys_path)
    for section, name in SECRET_FIELDS:  # a key written by an older chatapp moves out
        if name in config_data.get(section, {}):
            keys_data.setdefault(section, {})[name] = config_data[section].pop(name)
    for (section, name), value in changed_settings(settings).items():
        target = keys_data if (section, name) in SECRET_FIELDS else config_data
        if value is None:  # unset: the default (or the environment) applies again
            target.get(section, {}).pop(name, None)
        else:
            target.setdefault(section, {})[name] = value
    for data in (config_data, keys_data):
        for section in [s for s, fields in data.items() if isinstance(fields, dict) and not fields]:
            del data[section]
    paths.write_private_text(toml_path, tomli_w.dumps(config_data))
    if keys_data or keys_path.exists():
        paths.write_private_text(keys_path, tomli_w.dumps(keys_data))
    settings._loaded = settings.model_dump(mode="json")
    return toml_path


def _table_for_update(file: Path) -> dict[str, Any]:
    """What ``file`` holds now (another chatapp may have saved since we loaded). Lines that are
    not TOML and keys the settings refuse are dropped, the old file kept as ``<name>.broken``
    (chatapp.config_repair; ``repair_settings_files`` first says what was dropped)."""
    from chatapp.config_repair import repair_file

    return repair_file(file, _sections())[0]


def _sections() -> dict[str, type[BaseModel]]:
    return {name: field.annotation for name, field in Settings.model_fields.items()}  # type: ignore[misc]


def repair_settings_files(path: Path | None = None) -> list[SettingsRepair]:
    """Before saving: drop what config.toml and keys.toml hold that cannot be used (keeping the
    old files beside them) and say what was dropped; empty when both files are fine."""
    from chatapp.config_repair import repair_file

    toml_path = path or paths.config_file()
    repairs = [repair_file(f, _sections())[1] for f in (toml_path, toml_path.with_name(KEYS_FILE))]
    return [r for r in repairs if r is not None]


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret that is set shown as ``********``."""
    data = settings.model_dump(mode="json")
    for section, name in SECRET_FIELDS:
        if data.get(section, {}).get(name):
            data[section][name] = MASK
    return data


def settings_as_toml(settings: Settings, *, reveal_secrets: bool = False) -> str:
    data = settings.model_dump(mode="json") if reveal_secrets else masked_dump(settings)
    return tomli_w.dumps(_without_none(data))


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_none(value) if isinstance(value, dict) else value
        for key, value in data.items()
        if value is not None
    }
