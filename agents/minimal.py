"""A worked example of a custom agent: your own model client in under 50 lines, no peergym base class.

Run it with ``--agent agents.minimal:MinimalChatAgent --agent-opt base_url=http://127.0.0.1:8000/v1
--agent-opt model=my-model``. It talks to any OpenAI-compatible chat endpoint over plain HTTP, asks for
commands in fenced blocks (the text-mode protocol) and answers interview questions without tools.
"""

import json
import os
import urllib.request

from peergym.agents.base import Action, EndTask, Task
from peergym.agents.llm.tools import TEXT_MODE_INSTRUCTIONS, parse_text_reply


class MinimalChatAgent:
    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, temperature: float = 1.0):
        self.url, self.model, self.temperature = (
            base_url.rstrip("/") + "/chat/completions",
            model,
            temperature,
        )
        self.key = os.environ.get(api_key_env, "") if api_key_env else ""  # keys only from the environment

    def reset(self, task: Task) -> None:
        self.messages = [{"role": "system", "content": task.system_prompt + TEXT_MODE_INSTRUCTIONS}]

    def _chat(self, content: str) -> str:
        self.messages.append({"role": "user", "content": content})
        body = json.dumps({"model": self.model, "messages": self.messages, "temperature": self.temperature})
        request = urllib.request.Request(
            self.url,
            body.encode(),
            {"content-type": "application/json", "authorization": f"Bearer {self.key}"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # errors end the episode as "agent"
            reply = json.load(response)["choices"][0]["message"]["content"] or ""
        self.messages.append({"role": "assistant", "content": reply})
        return reply

    def act(self, observation: str) -> Action:
        prompt = observation if len(self.messages) == 1 else f"Output:\n{observation or '(no output)'}"
        for _ in range(3):  # a reply with neither a command nor END_TASK gets two reminders
            action = parse_text_reply(self._chat(prompt))
            if action is not None:
                return action
            prompt = "Reply with one ```bash block, or END_TASK: <summary>."
        return EndTask(self.messages[-1]["content"])

    def answer(self, question: str, run) -> str:  # the follow-up interview; optional
        return self._chat(question)

    def record_fields(self) -> dict:  # extra fields for the episode record; optional
        return {"messages": self.messages, "sampling": {"model": self.model, "temperature": self.temperature}}
