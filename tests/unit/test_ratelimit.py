"""The shared per-provider budget (agents/llm/ratelimit.py): on its own with many threads, then through the real
litellm client against the local fake provider, which enforces a limit of its own and answers 429 past it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from peergym.agents.base import AgentStopped
from peergym.agents.llm.client import ChatClient
from peergym.agents.llm.fake_server import FakeChatServer
from peergym.agents.llm.ratelimit import ProviderLimiter, limiter_for, provider_of
from peergym.agents.llm.settings import load_settings


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window of ``window`` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_no_window_holds_more_requests_than_the_limit_whatever_the_threads() -> None:
    limiter = ProviderLimiter(requests=8, tokens=None, window_s=0.3)
    sent: list[float] = []
    lock = threading.Lock()

    def call(_: int) -> None:
        entry, _waited = limiter.acquire(10)
        with lock:
            sent.append(entry[0])
        limiter.settle(entry, 10)  # answered at once

    t = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(call, range(40)))
    assert len(sent) == 40
    assert most_in_any_window(sent, 0.3) == 8  # full windows, never more
    assert time.monotonic() - t >= 4 * 0.3 * 0.95  # 40 requests at 8 a window: five windows


def test_tokens_are_budgeted_by_estimate_then_by_what_was_used() -> None:
    limiter = ProviderLimiter(requests=None, tokens=100, window_s=0.4)
    first, waited = limiter.acquire(60)
    assert waited == 0.0
    t = time.monotonic()
    limiter.settle(first, 30)  # it used fewer than estimated: 70 left
    second, waited = limiter.acquire(60)
    assert waited == 0.0
    limiter.settle(second, 60)
    _, waited = limiter.acquire(60)  # 90 used: waits for the first to age out of the window
    assert time.monotonic() - t >= 0.3 and waited > 0.25
    # larger than the whole budget: sent alone once the window allows (here at once: the window is empty)
    huge, waited = ProviderLimiter(requests=None, tokens=100, window_s=0.4).acquire(10_000)
    assert huge[1] == 10_000


def test_a_retry_after_pauses_every_caller_but_the_one_that_waited_it_out() -> None:
    limiter = ProviderLimiter(requests=None, tokens=None)
    limiter.pause(0.3)
    _, own = limiter.acquire(1, paused_already=True)
    assert own == 0.0
    t = time.monotonic()
    _, waited = limiter.acquire(1)
    assert time.monotonic() - t >= 0.28 and waited >= 0.28


def test_a_wait_that_would_pass_the_deadline_stops_the_episode_instead() -> None:
    limiter = ProviderLimiter(requests=1, tokens=None, window_s=60)
    limiter.acquire(1)  # still in flight: it counts until a window after its answer
    with pytest.raises(AgentStopped, match="rate limit"):
        limiter.acquire(1, deadline=time.monotonic() + 1.0)


def test_a_request_counts_until_a_window_after_its_answer_however_long_it_took() -> None:
    limiter = ProviderLimiter(requests=1, tokens=None, window_s=0.2)
    slow, _ = limiter.acquire(1)
    time.sleep(0.3)  # longer than the window, still unanswered
    limiter.settle(slow, 1)
    t = time.monotonic()
    limiter.acquire(1)
    assert time.monotonic() - t >= 0.18  # the provider may have seen it only just now


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        ProviderLimiter(requests=0, tokens=None)


def test_clients_of_one_provider_share_one_limiter() -> None:
    a = limiter_for(provider_of("openai/x", "http://127.0.0.1:9/v1/"), 5, None, 60.0)
    b = limiter_for(provider_of("openai/y", "http://127.0.0.1:9/v1"), 5, None, 60.0)
    assert a is b
    assert provider_of("gemini/gemini-3-pro", None) == "gemini"


def _calls(server: FakeChatServer, threads: int, calls: int, **limits: object) -> list[dict[str, object]]:
    settings = load_settings(None, model="openai/fake", api_base=server.url, max_retries=6, backoff_s=0.05,
                             backoff_max_s=2.0, **limits)  # fmt: skip
    records: list[dict[str, object]] = []
    lock = threading.Lock()

    def episode(_: int) -> None:
        client = ChatClient(settings)  # one per episode, as each LLM agent has its own
        for _call in range(calls):
            _, rec = client.complete([{"role": "user", "content": "hi"}], tools=None, seed=None, deadline=None,
                                     purpose="act")  # fmt: skip
            with lock:
                records.append(rec.as_dict())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(episode, range(threads)))
    return records


def test_through_litellm_the_provider_sees_no_more_than_the_shared_limit_and_answers_no_429() -> None:
    with FakeChatServer(default={"text": "ok"}, limit=(6, 1.0), latency=0.05) as server:
        records = _calls(server, threads=12, calls=2, rate_limit_requests=6, rate_limit_window_s=1.0)
    assert len(records) == 24 and all(r["ok"] for r in records)
    assert server.rejected == 0
    assert most_in_any_window(server.times, 1.0) <= 6
    assert sum(r["rate_limited_s"] for r in records) > 0  # most calls waited for the budget, not the provider


def test_a_429_storm_without_a_budget_set_ends_with_every_call_answered() -> None:
    # No limit configured: the provider's 429s and their Retry-After are all that hold the callers back.
    with FakeChatServer(default={"text": "ok"}, limit=(4, 0.5)) as server:
        records = _calls(server, threads=10, calls=2)
    assert len(records) == 20 and all(r["ok"] for r in records)
    assert server.rejected > 0  # there was a storm, and the retries (bounded) rode it out
