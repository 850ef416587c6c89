"""The commented starting point ``chatapp templates new NAME`` writes for a user template."""

from __future__ import annotations

SCAFFOLD = """\
# A chatapp prompt template. Check it with: chatapp templates validate {path}
# Run it with:  chatapp run {name} "some text"      (or a file path, or - for stdin)
# Every field except `title` is optional. Unknown fields are errors.

name: {name}                 # must match the file name
title: {title}
description: What this template does, in one line.
category: general            # free text, groups templates in lists
task: chat                   # chat | classification | summarization | translation | qa |
                             # reasoning | extraction | rewrite  (picks `chatapp eval` metrics)

system: >-
  You are a helpful assistant.

# The user message. {{{{ input }}}} is the text you run the template on; other placeholders
# name the variables below. Values are inserted literally (never evaluated).
template: |-
  {{{{ input }}}}

variables: {{}}
#  tone:
#    type: choice             # text | choice | language | number
#    options: [formal, friendly]   # or a mapping: value -> text put into the prompt
#    default: formal
#    description: how the reply should sound
#  target:
#    type: language           # Korean, ko, 한국어 … all become "Korean"
#    default: English
#  words:
#    type: number
#    min: 10
#    max: 200
#    required: false

# Few-shot examples, shown to the model as earlier user/assistant turns.
examples: []
#  - input: "an example input"
#    output: "the answer you want"
#    reasoning: "optional: the steps (used with `reasoning:` below)"

selection:
  method: fixed              # fixed (first k) | random (seeded) | similar (nearest by embedding)
  # k: 4                     # how many examples (default: all)

# reasoning:                 # chain-of-thought: reason first, then "Answer: ..." is extracted
#   answer_pattern: '(?im)^\\s*answer\\s*:\\s*(.+?)\\s*$'
#   fallback: last_number    # none | last_number | last_line

output:
  type: text                 # text | choices | json
  # choices: [yes, no]       # with type: choices the model can only emit one of these
  # labels: {{yes: positive, no: negative}}   # report/score a choice as another label
  # json_schema: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
  # constrain: true          # false: no grammar (the answer is still parsed and checked)

generation: {{}}
#  temperature: 0
#  max_tokens: 256
#  stop: ["\\n\\n"]
"""


def scaffold_text(name: str, path: str) -> str:
    title = name.replace("-", " ").replace("_", " ").capitalize()
    return SCAFFOLD.format(name=name, title=title, path=path)
