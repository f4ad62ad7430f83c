"""One request and token budget per provider, shared by every episode of the process.

A sweep keeps hundreds of model episodes in flight from one runner; each asking on its own would overrun the
provider's rate limit and turn the sweep into a storm of 429s. Every call therefore passes through the
:class:`ProviderLimiter` of its provider (its ``api_base``, else its litellm prefix: ``openai``, ``gemini``):

- at most ``requests`` requests, and ``tokens`` tokens (prompt estimated before, counted after), are sent in
  any window of ``window_s`` seconds (60: the providers' per-minute limits), counted exactly over a sliding
  window of send times, so no window the provider looks at holds more;
- a 429 with ``Retry-After`` pauses every episode's calls to that provider until then, not only the one that
  met it (the provider said so for the whole key).

Waiting for the budget is recorded in the call's ``waited_s`` and bounded by the episode's deadline.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from peergym.agents.base import AgentStopped


class ProviderLimiter:
    """A sliding-window budget of requests and tokens, and a shared pause; safe for any number of threads."""

    def __init__(self, requests: int | None, tokens: int | None, window_s: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None) -> None:  # fmt: skip
        if (requests is not None and requests < 1) or (tokens is not None and tokens < 1):
            raise ValueError("a rate limit allows at least one request and one token per window")
        self.requests, self.tokens, self.window_s = requests, tokens, window_s
        self.clock = clock
        self.sleep = sleep  # None: waits on the real clock, woken early when a settle frees tokens
        self._sent: deque[list[float]] = deque()  # the requests that count: see _wait_for
        self._paused_until = 0.0
        self._cond = threading.Condition()
        self.max_waiting = 0  # the most calls ever waiting at once (a measure of contention)
        self._waiting = 0

    def acquire(self, tokens: int, deadline: float | None = None, *,
                paused_already: bool = False) -> tuple[list[float], float]:  # fmt: skip
        """Wait until a request of about ``tokens`` tokens fits the budget and no pause holds, and count it.
        ``paused_already``: the caller has just waited out the Retry-After it met itself (the pause is for the
        others).

        Returns the request's entry (pass it to :meth:`settle` when the request came back, with the tokens it
        used) and the seconds waited. A request larger than the whole token budget is sent alone in an
        otherwise empty window.

        Raises:
            AgentStopped("wall_time"): the wait would pass ``deadline`` (the episode's).
        """
        started, waited = self.clock(), False
        with self._cond:
            self._waiting += 1
            self.max_waiting = max(self.max_waiting, self._waiting)
            try:
                while True:
                    now = self.clock()
                    wait = self._wait_for(tokens, now, paused_already)
                    if wait <= 0:
                        entry = [now, float(tokens), 0.0]  # [sent, then answered, at; tokens; answered]
                        self._sent.append(entry)
                        return entry, (now - started) if waited else 0.0
                    if deadline is not None and now + wait >= deadline:
                        raise AgentStopped("wall_time", "waiting for the provider's rate limit would pass the "
                                                        "deadline")  # fmt: skip
                    waited = True
                    if self.sleep is None:
                        self._cond.wait(wait)
                    else:  # an injected clock (tests): its own sleep moves it
                        self._cond.release()
                        try:
                            self.sleep(wait)
                        finally:
                            self._cond.acquire()
            finally:
                self._waiting -= 1

    def _wait_for(self, tokens: int, now: float, paused_already: bool = False) -> float:
        """Seconds until a request of ``tokens`` may be sent (0: now). Caller holds the lock.

        A request counts from when it is sent until ``window_s`` after its answer came back: the provider saw
        it somewhere in between, so no window the provider can look at holds more than the limit, however
        long a request took to leave or to be answered. One still in flight always counts.
        """
        self._sent = deque(e for e in self._sent if not (e[2] and e[0] <= now - self.window_s))
        if now < self._paused_until and not paused_already:
            return self._paused_until - now
        waits = [0.0]
        # when each counted request stops counting; one in flight: at the latest a window from now (a settle
        # wakes the waiters earlier)
        expiries = sorted((e[0] + self.window_s if e[2] else now + self.window_s, e[1]) for e in self._sent)
        if self.requests is not None and len(expiries) >= self.requests:
            waits.append(expiries[len(expiries) - self.requests][0] - now)
        if self.tokens is not None and expiries:
            used = sum(spent for _, spent in expiries)
            need = used + min(tokens, self.tokens) - self.tokens
            freed = 0.0
            for until, spent in expiries:  # the earliest moment enough of the window's tokens have aged out
                if need <= 0:
                    break
                freed += spent
                if freed >= need:
                    waits.append(until - now)
                    break
        return max(waits)

    def settle(self, entry: list[float], tokens: int | None) -> None:
        """A request came back (answered or not): it counts from now for a window, with the tokens it used
        (unknown: its estimate)."""
        with self._cond:
            entry[0], entry[2] = self.clock(), 1.0
            if tokens is not None:
                entry[1] = float(tokens)
            self._cond.notify_all()  # fewer tokens than estimated may let a waiting call go

    def pause(self, seconds: float) -> None:
        """No request before ``seconds`` from now (a provider's Retry-After), for every caller."""
        with self._cond:
            self._paused_until = max(self._paused_until, self.clock() + seconds)
            self._cond.notify_all()

    def in_window(self) -> int:
        """Requests sent in the current window."""
        with self._cond:
            self._wait_for(0, self.clock())
            return len(self._sent)


_LIMITERS: dict[tuple[object, ...], ProviderLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def provider_of(model: str, api_base: str | None) -> str:
    """What a rate limit is counted for: the endpoint when one is set, else the model's litellm provider."""
    return api_base.rstrip("/") if api_base else model.partition("/")[0]


def limiter_for(provider: str, requests: int | None, tokens: int | None, window_s: float, *,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] | None = None) -> ProviderLimiter:  # fmt: skip
    """The process's one limiter of ``provider`` with these limits (every episode of a preset shares it). A
    client with its own clock (a test's) gets one of its own."""
    key = (provider, requests, tokens, window_s, clock, sleep)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = ProviderLimiter(requests, tokens, window_s, clock=clock, sleep=sleep)
        return limiter
