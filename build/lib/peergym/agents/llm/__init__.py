"""The LLM agent on litellm (``--agent llm:PRESET``). litellm is imported when the first agent is built."""

from .settings import AgentSettings, load_settings

__all__ = ["AgentSettings", "LLMAgent", "load_settings"]


def __getattr__(name: str):  # lazy: importing agents.llm must not import litellm
    if name == "LLMAgent":
        from .agent import LLMAgent

        return LLMAgent
    raise AttributeError(name)
