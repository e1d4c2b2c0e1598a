"""The chat format of the FAQ model: one place, so training and evaluation never drift apart.

``LLAMA3_CHAT_TEMPLATE`` is the pinned Llama-3 template (the tiny student's own);
``CHATML_CHAT_TEMPLATE`` the ChatML one of SmolLM2-Instruct (and Qwen-style models). Both mark
the assistant's tokens with ``{% generation %}`` so training can put the loss on answers only;
the models' own templates lack the markers, and each pinned one renders the same text as the
model's own, so the tuned model is asked exactly as it was trained.
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


# SmolLM2-Instruct's ChatML template with generation markers around the answer and its
# <|im_end|>; the text is identical to the model's own (a test renders both).
CHATML_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
PINNED_TEMPLATES = {"llama3": LLAMA3_CHAT_TEMPLATE, "chatml": CHATML_CHAT_TEMPLATE}


def prompt_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    """What the model sees at inference: system prompt and question, answer left to generate."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
    ]


def to_messages(question: str, answer: str, system_prompt: str) -> list[dict[str, str]]:
    """A training conversation: the prompt messages followed by the reference answer."""
    return [*prompt_messages(question, system_prompt), {"role": "assistant", "content": answer}]
