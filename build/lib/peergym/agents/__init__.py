"""Agents: the Agent protocol, scripted and replay agents, the litellm agent."""
