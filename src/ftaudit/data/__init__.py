"""Record types, file/hub loaders and the registry of named datasets."""

from .loaders import load_chat_records, load_prompts, save_chat_records
from .records import ChatRecord, PromptRecord
from .registry import DATASETS, DatasetSpec, get_prompts, get_spec, register_dataset

__all__ = ["DATASETS", "ChatRecord", "DatasetSpec", "PromptRecord", "get_prompts", "get_spec", "load_chat_records",
           "load_prompts", "register_dataset", "save_chat_records"]
