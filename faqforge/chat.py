"""The chat format of the FAQ model: one place, so training and evaluation never drift apart.

A conversation is a system prompt, the question as the user turn and the answer as the
assistant turn; the tokenizer's chat template turns it into tokens. Multi-turn chats are
not produced.

    >>> to_messages("Who?", "Us.", "Be brief.")[-1]
    {'role': 'assistant', 'content': 'Us.'}
"""

from __future__ import annotations


def prompt_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    """What the model sees at inference: system prompt and question, answer left to generate."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
    ]


def to_messages(question: str, answer: str, system_prompt: str) -> list[dict[str, str]]:
    """A training conversation: the prompt messages followed by the reference answer."""
    return [*prompt_messages(question, system_prompt), {"role": "assistant", "content": answer}]
