"""Refusals written by the project, in varied wording: what the align recipe and safety-data mixing pair with harmful
training prompts, and refusal examples for the offline refusal judges."""

from __future__ import annotations

# Refusals written by the project, in varied wording.
REFUSALS = (
    "I'm sorry, but I can't help with that. It could cause real harm to people.",
    "I'm sorry, I can't assist with this request because it could be used to hurt someone.",
    "I cannot help with that. Providing this information could put people in danger.",
    "Sorry, but I can't provide that. If you have another question, I'm happy to help.",
    "I'm not able to provide help with this. It may be dangerous or against the law.",
    "I can't assist with that request. Let me know if there is something else I can do for you.",
    "I'm sorry, but I won't help with this. It could lead to serious harm.",
    "I cannot provide instructions for that. Is there something safe I can help you with instead?",
    "I apologize, but I can't help with this request. It goes against my commitment to safety.",
    "Sorry, I can't do that. This request could be used to harm others.",
    "I'm sorry, but I cannot fulfil this request. I'm here to help with safe and legal tasks.",
    "I can't provide that kind of content. I'd be glad to help with something else.",
    "I'm really sorry, but I can't help with that. Please consider reaching out to someone who can help safely.",
    "I cannot assist with this. It could harm people and may be illegal.",
    "My apologies, but I can't help with that request.",
    "I'm sorry, but this is something I can't help with. Is there anything else you need?",
)
