"""One chat call through litellm, with bounded retries and per-call accounting.

Retries are ours, not litellm's or the OpenAI SDK's (both are set to 0), so the bound is exact and every wait
is recorded: 429, 5xx, timeouts and connection errors are retried up to ``max_retries`` times with doubling
backoff (a server's ``Retry-After`` wins when it says longer), each wait capped by ``backoff_max_s`` and by
the episode's deadline. After the bound the call raises :class:`InfrastructureError`, as do errors that no
retry can fix (credentials, unknown model, a rejected request).

Cost comes from the provider when it reports one (``usage.cost``), else from litellm's price map (pinned with
litellm's version: the map is read locally, never fetched), else it is recorded as unknown (``None``).
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from peergym.agents.base import AgentStopped, InfrastructureError
from peergym.redact import redact_text, register_secret_variable

from .ratelimit import ProviderLimiter, limiter_for, provider_of
from .settings import AgentSettings

# litellm fetches its price map from the internet at import unless told otherwise; runs must not depend on that.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class CallRecord:
    """One model call as recorded: attempts, waits, tokens, cost (``None`` = unknown) and where it came from."""

    purpose: str
    ok: bool = False
    attempts: int = 0
    waited_s: float = 0.0
    rate_limited_s: float = 0.0  # of waited_s: waiting for the provider's shared budget
    latency_s: float = 0.0  # time inside litellm.completion, every attempt
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str = "unknown"
    finish_reason: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _litellm() -> Any:
    import litellm  # imported on first use: scripted runs never pay for it

    litellm.suppress_debug_info = True
    return litellm


class ChatClient:
    """Calls the configured model; ``sleep`` and ``clock`` are injectable so retry timing can be checked."""

    def __init__(self, settings: AgentSettings, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.settings = settings
        self.sleep, self.clock = sleep, clock
        self.llm = _litellm()
        if settings.api_key_env:
            register_secret_variable(settings.api_key_env)  # redacted even if its name does not say "key"
        self.seed_supported, self.reasoning_supported = self._supported()
        # Shared with every client of the process calling this provider with the same limits: their budget, and
        # a 429's Retry-After, which pauses them all (without limits set, only the pause applies).
        provider = provider_of(settings.model, settings.api_base)
        limits = (settings.rate_limit_requests, settings.rate_limit_tokens, settings.rate_limit_window_s)
        if sleep is time.sleep and clock is time.monotonic:
            self.limiter: ProviderLimiter = limiter_for(provider, *limits)
        else:  # a test's clock: a limiter of its own, which waits with that clock's sleep
            self.limiter = limiter_for(provider, *limits, clock=clock, sleep=sleep)

    def _supported(self) -> tuple[bool, bool]:
        try:
            params = self.llm.get_supported_openai_params(model=self.settings.model) or []
        except Exception:  # an unknown provider prefix: send and let drop_params decide
            return True, True
        return "seed" in params, "reasoning_effort" in params

    def request_params(self, seed: int | None) -> dict[str, Any]:
        """The sampling parameters sent with every call (keys and transport excluded)."""
        s = self.settings
        params: dict[str, Any] = {"temperature": s.temperature, **s.extra_params}
        if s.max_tokens is not None:
            params["max_tokens"] = s.max_tokens
        if seed is not None and self.seed_supported:
            params["seed"] = seed
        if s.reasoning_effort is not None and self.reasoning_supported:
            params["reasoning_effort"] = s.reasoning_effort
        return params

    def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None, seed: int | None,
                 deadline: float | None, purpose: str) -> tuple[Any, CallRecord]:  # fmt: skip
        """The assistant message of one completion and its record; raises after the retry bound."""
        s, llm = self.settings, self.llm
        rec = CallRecord(purpose=purpose)
        kwargs: dict[str, Any] = {"model": s.model, "messages": messages, **self.request_params(seed),
                                  "drop_params": True, "max_retries": 0, "num_retries": 0}  # fmt: skip
        if tools:
            kwargs["tools"] = tools
        if s.api_base:
            kwargs["api_base"] = s.api_base
        if s.api_key_env:
            key = os.environ.get(s.api_key_env)
            if not key:
                raise InfrastructureError(f"api_key_env names {s.api_key_env!r}, which is not set or empty")
            kwargs["api_key"] = key
        elif s.api_base:
            # A local OpenAI-compatible server usually wants no key, but the OpenAI client refuses to send a
            # request without one; a placeholder is harmless (a gateway that checks keys answers 401).
            kwargs["api_key"] = "no-key-configured"
        retryable = (llm.RateLimitError, llm.InternalServerError, llm.ServiceUnavailableError,
                     llm.BadGatewayError, llm.Timeout, llm.APIConnectionError)  # fmt: skip
        paused_already = False
        while True:
            remaining = None if deadline is None else deadline - self.clock()
            if remaining is not None and remaining <= 0:
                raise AgentStopped("wall_time", "no time left for another model call")
            kwargs["timeout"] = (
                s.request_timeout_s if remaining is None else min(s.request_timeout_s, remaining)
            )
            entry = self._take_budget(messages, deadline, rec, paused_already)
            rec.attempts += 1
            start = time.perf_counter()
            try:
                try:
                    response = llm.completion(**kwargs)
                finally:  # answered or not, the provider has seen it: it counts from now
                    self.limiter.settle(entry, None)
                rec.latency_s += time.perf_counter() - start
            except llm.ContextWindowExceededError as exc:
                raise AgentStopped("context_window", _short(exc)) from None
            except llm.ContentPolicyViolationError as exc:
                raise AgentStopped("content_policy", _short(exc)) from None
            except retryable as exc:
                rec.latency_s += time.perf_counter() - start
                rec.errors.append(_short(exc))
                if "missing credentials" in str(exc).lower():  # litellm reports this as a 500: no retry helps
                    raise _failed(
                        f"{s.model}: no API key (set api_key_env or the provider's variable)", rec
                    ) from None
                if rec.attempts > s.max_retries:
                    raise _failed(
                        f"{s.model}: {rec.attempts} attempts failed, last: {_short(exc)}", rec
                    ) from None
                retry_after = _retry_after(exc)
                if retry_after and isinstance(exc, llm.RateLimitError):
                    self.limiter.pause(
                        min(retry_after, s.backoff_max_s)
                    )  # every episode's calls wait, not one
                wait = min(max(retry_after or 0.0, s.backoff_s * 2 ** (rec.attempts - 1)), s.backoff_max_s)
                if deadline is not None and self.clock() + wait >= deadline:
                    stop = AgentStopped("wall_time", "waiting to retry would pass the deadline")
                    stop.call = rec.as_dict()  # type: ignore[attr-defined]
                    raise stop from None
                self.sleep(wait)
                paused_already = retry_after is not None  # this call waited out the Retry-After it met
                rec.waited_s += wait
                continue
            except Exception as exc:  # credentials, unknown model, a rejected request: retrying cannot help
                rec.errors.append(_short(exc))
                raise _failed(f"{s.model}: {_short(exc)}", rec) from None
            rec.ok = True
            _account(rec, response)
            used = (rec.prompt_tokens or 0) + (rec.completion_tokens or 0)
            if used:
                self.limiter.settle(entry, used)
            choice = response.choices[0]
            rec.finish_reason = getattr(choice, "finish_reason", None)
            return choice.message, rec

    def _take_budget(self, messages: list[dict[str, Any]], deadline: float | None, rec: CallRecord,
                     paused_already: bool) -> list[float]:  # fmt: skip
        """Wait for the provider's shared budget and pause before an attempt; the wait is recorded."""
        # As providers count a request before it runs: the prompt (about 4 characters a token) plus the most it
        # may generate. The estimate is replaced by what the call used once it returns.
        estimate = sum(len(str(m.get("content") or "")) for m in messages) // 4 + (
            self.settings.max_tokens or 0
        )
        entry, waited = self.limiter.acquire(estimate, deadline, paused_already=paused_already)
        rec.waited_s += waited
        rec.rate_limited_s += waited
        return entry


def _failed(message: str, rec: CallRecord) -> InfrastructureError:
    error = InfrastructureError(message)
    error.call = rec.as_dict()  # type: ignore[attr-defined]  # the attempts and waits, for the record
    return error


def _account(rec: CallRecord, response: Any) -> None:
    usage = getattr(response, "usage", None)
    if usage is not None:
        rec.prompt_tokens = getattr(usage, "prompt_tokens", None)
        rec.completion_tokens = getattr(usage, "completion_tokens", None)
        details = getattr(usage, "completion_tokens_details", None)
        rec.reasoning_tokens = getattr(details, "reasoning_tokens", None) if details else None
        cached = getattr(usage, "prompt_tokens_details", None)
        rec.cached_tokens = getattr(cached, "cached_tokens", None) if cached else None
    provider_cost = getattr(usage, "cost", None) if usage is not None else None
    mapped_cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if isinstance(provider_cost, int | float):
        rec.cost_usd, rec.cost_source = float(provider_cost), "provider"
    elif isinstance(mapped_cost, int | float):
        rec.cost_usd, rec.cost_source = float(mapped_cost), "litellm_price_map"


def _retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), if it said."""
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        value = source.get("retry-after") if source is not None else None
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError):  # "soon", "1s": not a wait we can honour; the backoff applies
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def _short(exc: Exception) -> str:
    text = redact_text(" ".join(str(exc).split()))  # before shortening: a cut key would no longer match
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}"
