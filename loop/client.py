"""A Python client of the HTTP API, for instrument control code and remote workers.

    from loop.client import LoopClient

    with LoopClient("http://planner:8000", token) as lab:
        for p in lab.propose("p3ht", n=4)["proposals"]:
            lab.complete("p3ht", p["id"], {"conductivity": measure(p["params"])})

Errors come back as the same `LoopError` classes the library raises (`NotFoundError`,
`ConflictError`, `IngestError` with its problem list...), with the server's message and hint.
Requests that only read, and the idempotent ones (complete, heartbeat, ingest: every row has an
idempotency key, its proposal, its measurement_id or a hash of its content, so a repeat is
acknowledged, not stored again), are retried when the server is busy (503) or unreachable;
propose and claim are not, since a lost answer to them may still have changed the store.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from loop.errors import (
    BudgetError,
    ConflictError,
    IngestError,
    LoopError,
    NotFoundError,
    SpecError,
)

__all__ = ["LoopClient", "AccessError"]


class AccessError(LoopError):
    """The token is missing, unknown, revoked, or does not reach the campaign (401/403)."""

    def __init__(self, message: str, hint: str = "", status: int = 401) -> None:
        super().__init__(message, hint)
        self.status = status


class LoopClient:
    """The HTTP API of `loop serve` as methods.

    Args:
        url: Base URL of the service, e.g. `http://127.0.0.1:8000`.
        token: An API token (`loop token create CAMPAIGN`).
        timeout: Seconds per request; proposals with neural surrogates can take minutes.
        retries: Attempts for retried requests when the server is busy or unreachable.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 300.0,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = max(1, retries)

    def __enter__(self) -> LoopClient:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ----------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, json: Any = None, params: Any = None, retry: bool
    ) -> Any:
        attempts = self.retries if retry else 1
        for k in range(attempts):
            try:
                r = self._http.request(method, path, json=json, params=params)
            except httpx.TransportError as err:
                if k + 1 == attempts:
                    raise LoopError(
                        f"cannot reach the loop service at {self._http.base_url}: {err}",
                        "check the URL and that `loop serve` is running",
                    ) from None
                time.sleep(min(2.0**k * 0.2, 5.0))
                continue
            if r.status_code == 503 and k + 1 < attempts:
                time.sleep(min(2.0**k * 0.2, 5.0))
                continue
            return self._result(r)
        raise AssertionError("unreachable")

    @staticmethod
    def _result(r: httpx.Response) -> Any:
        if r.status_code == 204:
            return None
        if r.status_code < 400:
            if r.headers.get("content-type", "").startswith("application/json"):
                return r.json()
            return r.text
        try:
            body = r.json()
            msg, hint = str(body.get("error", r.text)), str(body.get("hint", ""))
            problems = [str(p) for p in body.get("problems", [])]
        except ValueError:
            msg, hint, problems = r.text or r.reason_phrase, "", []
        if r.status_code in (401, 403):
            raise AccessError(msg, hint, r.status_code)
        if r.status_code == 404:
            raise NotFoundError(msg, hint)
        if r.status_code == 409:
            cls = BudgetError if "budget" in msg or "target" in msg else ConflictError
            raise cls(msg, hint)
        if r.status_code == 422:
            if problems and "spec" in msg:
                raise SpecError(msg, hint)
            raise IngestError(msg, hint, problems)
        raise LoopError(f"HTTP {r.status_code}: {msg}", hint)

    # -- campaigns ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health", retry=True)

    def campaigns(self) -> list[dict[str, Any]]:
        return self._call("GET", "/campaigns", retry=True)

    def create_campaign(self, spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/campaigns", json={"spec": spec, "name": name}, retry=False)

    def campaign(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/campaigns/{name}", retry=True)

    def status(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/campaigns/{name}/status", retry=True)

    def export(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/campaigns/{name}/export", retry=True)

    def events(self, name: str, after: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/campaigns/{name}/events", params={"after": after}, retry=True)

    # -- the loop -----------------------------------------------------------------------------

    def propose(self, name: str, n: int | None = None, seed: int | None = None) -> dict[str, Any]:
        return self._call(
            "POST", f"/campaigns/{name}/propose", json={"n": n, "seed": seed}, retry=False
        )

    def ingest(
        self, name: str, rows: list[dict[str, Any]], source: str = "experiment"
    ) -> dict[str, Any]:
        """Store rows (the columns of `loop ingest`), all or none; safe to repeat."""
        return self._call(
            "POST",
            f"/campaigns/{name}/measurements",
            json={"rows": rows, "source": source},
            retry=True,
        )

    def proposals(self, name: str, status: str | None = None) -> list[dict[str, Any]]:
        return self._call(
            "GET", f"/campaigns/{name}/proposals", params={"status": status}, retry=True
        )

    # -- jobs ---------------------------------------------------------------------------------

    def claim(self, name: str, worker: str, lease_seconds: float = 60.0) -> dict[str, Any] | None:
        """Lease the oldest open job; None when the queue is empty."""
        return self._call(
            "POST",
            f"/campaigns/{name}/proposals/claim",
            json={"worker": worker, "lease_seconds": lease_seconds},
            retry=False,
        )

    def heartbeat(
        self, name: str, proposal_id: int, worker: str, lease_seconds: float = 60.0
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/campaigns/{name}/proposals/{proposal_id}/heartbeat",
            json={"worker": worker, "lease_seconds": lease_seconds},
            retry=True,
        )

    def complete(
        self,
        name: str,
        proposal_id: int,
        values: dict[str, float],
        *,
        stds: dict[str, float] | None = None,
        worker: str = "",
        source: str = "experiment",
        provenance: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Store a proposal's result; repeating it with the same values is harmless."""
        return self._call(
            "POST",
            f"/campaigns/{name}/proposals/{proposal_id}/complete",
            json={
                "values": values,
                "stds": stds or {},
                "worker": worker,
                "source": source,
                "provenance": provenance or {},
            },
            retry=True,
        )

    def fail(self, name: str, proposal_id: int, reason: str, worker: str = "") -> dict[str, Any]:
        """Mark a proposal failed; with `worker`, only if that worker holds its lease (409 if
        not)."""
        body: dict[str, Any] = {"reason": reason}
        if worker:
            body["worker"] = worker
        return self._call(
            "POST",
            f"/campaigns/{name}/proposals/{proposal_id}/fail",
            json=body,
            retry=False,
        )

    def abandon(self, name: str, proposal_id: int, reason: str = "") -> dict[str, Any]:
        return self._call(
            "POST",
            f"/campaigns/{name}/proposals/{proposal_id}/abandon",
            json={"reason": reason},
            retry=False,
        )
