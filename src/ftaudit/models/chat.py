"""Chat formatting through the tokenizer's own chat template."""

from __future__ import annotations

from ..errors import FtauditError


def messages_for(prompt: str, system: str | None = None) -> list[dict]:
    """A one-turn conversation, optionally under a system prompt."""
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": prompt}]


def format_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render messages with the tokenizer's chat template (no hand-written formats)."""
    if not getattr(tokenizer, "chat_template", None):
        raise FtauditError("this tokenizer has no chat template; ftaudit audits chat models, pass one with a chat template")
    if add_generation_prompt and messages and messages[-1]["role"] == "assistant":
        # a prefilled answer (the prefilling attack): rendered open, without its end of turn, for the model to continue
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        except ValueError as exc:
            raise FtauditError(f"this model's chat template cannot leave an answer open for prefilling ({exc})") from None
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
