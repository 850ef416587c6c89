"""Each limit a model's chat template renders within (chatapp/engine/template_limits.py), tried
with the construct that would otherwise take the time or the memory, and ordinary templates
that must render exactly as before."""

from __future__ import annotations

import time

import jinja2
import pytest

from chatapp.engine.template_limits import (
    TIME_LIMIT_S,
    LimitedSandbox,
    TemplateLimitError,
    over_limit,
    render_limited,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def render(source: str) -> str:
    env = LimitedSandbox(trim_blocks=True, lstrip_blocks=True)
    return render_limited(env.from_string(source), source, 2, messages=MESSAGES)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'A' * 3000000000 }}",
        "{{ [1] * 3000000000 }}",
        "{% set ns = namespace(s='AAAA') %}{% for c in 'x' * 40 %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% set ns = namespace(s='AAAA') %}{% for c in 'x' * 40 %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "{% set big = 'A' * 1000000 %}{% set x %}{% for i in range(100) %}{{ big }}{% endfor %}"
        "{% endset %}",
        "{% set big = 'A' * 1000000 %}{% for i in range(100) %}{{ big }}{% endfor %}",
        "{{ 'a' | center(1000000000) }}",
        "{{ 'a'.center(1000000000) }}",
        "{{ 'a'.ljust(1000000000) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999s' % 1 }}",
        "{{ '%*s' % (999999999, 1) }}",
        "{{ '%999999999s' | format(1) }}",
        "{% set s = 'A' * 1000000 %}{{ s.replace('', s) | length }}",
        "{% set s = 'A' * 1000000 %}{{ s | replace('', s) | length }}",
        "{% set s = 'A' * 100000 %}{{ s.join([s] * 100) | length }}",
        "{% set s = 'A' * 100000 %}{{ ([s] * 100) | join | length }}",
        "{{ ('x\\n' * 100000) | indent(1000) | length }}",
        "{{ 10 ** 100000 }}",
        "{{ range(1000000) | list | length }}",
    ],
)
def test_a_template_that_builds_too_much_is_stopped_at_once(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateLimitError):
        render(source)
    assert time.monotonic() - started < 1
    assert source in over_limit


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% set s = 'A' * 3000 %}{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}"
        "{% endfor %}{% endfor %}",
        # each turn of the loop is mostly a filter's work
        "{% for i in range(100000) %}{{ range(100000) | list | sum }}{% endfor %}",
    ],
)
def test_a_template_that_runs_too_long_is_stopped_at_the_time_limit(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match="ran longer"):
        render(source)
    assert time.monotonic() - started < TIME_LIMIT_S + 2
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match="before"):
        render(source)  # not run again
    assert time.monotonic() - started < 0.1


def test_ordinary_templates_render_as_jinja_renders_them() -> None:
    source = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{{ '%d items' % 3 }} {{ '{:>5}'.format(1) }} {{ 'a' | center(5) }} "
        "{{ [1, 2] | join(',') }} {{ 'a-b' | replace('-', '+') }} {{ 'x' * 3 }} {{ 2 ** 10 }} "
        "{% for i in range(3) %}{{ i ~ ',' }}{% endfor %}"
    )
    plain = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(source)
    assert render(source) == plain.render(messages=MESSAGES)


def test_the_limits_do_not_stay_on_after_a_render() -> None:
    import sys

    before = sys.gettrace()
    render("{{ 'ok' }}")
    with pytest.raises(TemplateLimitError):
        render("{{ 'A' * 3000000000 }}")
    assert sys.gettrace() is before
    assert "A" * 10 * 1000 == "A" * 10_000  # plain Python is not limited afterwards
