"""The chat format of the FAQ model: one place, so training and evaluation never drift apart.

``LLAMA3_CHAT_TEMPLATE`` is the pinned template (the tiny student's own).
A conversation is a system prompt, the question as the user turn and the answer as the
assistant turn; the tokenizer's chat template turns it into tokens. Multi-turn chats are
not produced.

    >>> to_messages("Who?", "Us.", "Be brief.")[-1]
    {'role': 'assistant', 'content': 'Us.'}
"""

from __future__ import annotations

# The Llama-3 chat format, pinned. The assistant's content and its <|eot_id|> sit inside the
# generation markers, so assistant-only loss trains exactly the answer and the stop token.
# Meta's own Llama-3 template has no such markers: `finetune.chat_template: llama3` pins this one.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}"
    "{%- else %}"
    "{{- message['content'] | trim + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def prompt_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    """What the model sees at inference: system prompt and question, answer left to generate."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
    ]


def to_messages(question: str, answer: str, system_prompt: str) -> list[dict[str, str]]:
    """A training conversation: the prompt messages followed by the reference answer."""
    return [*prompt_messages(question, system_prompt), {"role": "assistant", "content": answer}]
