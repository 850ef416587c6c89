"""Languages a ``language`` variable accepts: English names, ISO codes and native names all
resolve to the English name that goes into the prompt (small models follow English names best)."""

from __future__ import annotations

LANGUAGES: dict[str, tuple[str, ...]] = {
    "Korean": ("ko", "kor", "한국어", "korean"),
    "English": ("en", "eng", "english"),
    "Japanese": ("ja", "jp", "jpn", "日本語", "japanese"),
    "Chinese": ("zh", "zh-cn", "zho", "chi", "中文", "汉语", "chinese", "mandarin"),
    "French": ("fr", "fra", "français", "francais", "french"),
    "German": ("de", "deu", "ger", "deutsch", "german"),
    "Spanish": ("es", "spa", "español", "espanol", "spanish"),
    "Italian": ("it", "ita", "italiano", "italian"),
    "Portuguese": ("pt", "por", "português", "portugues", "portuguese"),
    "Russian": ("ru", "rus", "русский", "russian"),
    "Vietnamese": ("vi", "vie", "tiếng việt", "vietnamese"),
    "Thai": ("th", "tha", "ไทย", "thai"),
    "Indonesian": ("id", "ind", "bahasa indonesia", "indonesian"),
    "Arabic": ("ar", "ara", "العربية", "arabic"),
    "Hindi": ("hi", "hin", "हिन्दी", "hindi"),
    "Dutch": ("nl", "nld", "nederlands", "dutch"),
    "Turkish": ("tr", "tur", "türkçe", "turkish"),
    "Polish": ("pl", "pol", "polski", "polish"),
}

_ALIASES = {alias.casefold(): name for name, aliases in LANGUAGES.items() for alias in aliases}
_ALIASES.update({name.casefold(): name for name in LANGUAGES})


def resolve_language(value: str) -> str | None:
    """The English name of the language ``value`` names (a name, code or native name), or None."""
    return _ALIASES.get(value.strip().casefold())
