"""Prompt templates: the YAML format, rendering, few-shot selection, output constraints and
parsing. ``build_template_turn`` is the entry point for the CLI, the evaluator and the UI."""

from chatapp.prompting.constraints import ParsedOutput
from chatapp.prompting.loader import discover, get_template, load_all, load_template_file
from chatapp.prompting.schema import Example, Template
from chatapp.prompting.turn import TemplateTurn, build_template_turn

__all__ = [
    "Example",
    "ParsedOutput",
    "Template",
    "TemplateTurn",
    "build_template_turn",
    "discover",
    "get_template",
    "load_all",
    "load_template_file",
]
