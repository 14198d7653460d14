"""etcd's v3 API through its JSON gateway, for `registry_etcd`: typed, thread-safe, and
never slow to fail.

Built on etcd3gw (OpenStack's client for the gateway: JSON over HTTP, no gRPC or protobuf
to build). etcd3gw finds the API path (`/v3/` from etcd 3.4 on, by asking `/version`), maps
HTTP failures to its exceptions and grants, refreshes and revokes leases; this module adds
what a registry needs on top:

- one etcd3gw client per thread, as the manager calls from the event loop and from worker
  threads at once, each with its own HTTP session: for http endpoints a keep-alive
  `http.client` connection (`_etcd_http`: a quarter of requests' CPU per call), for https a
  requests session; neither follows proxy variables from the environment (a proxy between
  a sidecar and etcd is never wanted);
- every request times out after `timeout` (2 s), and every failure to get an answer from
  etcd becomes `RegistryUnavailable` (-32004) with a reason a person can act on, logged when
  it starts or changes, and "works again" logged when a request succeeds after it;
- range reads that keep the header revision (for snapshot reads and `version()`), and
  transactions written as compare / success / failure lists.

`HostLease` is the one etcd lease per host that every lease key hangs on (see
docs/etcd.md, "The host lease").
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as gw_errors
from etcd3gw.client import Etcd3Client
from etcd3gw.lease import Lease as GwLease

from ._etcd_http import HttpSession
from .protocol.errors import RegistryUnavailable

log = logging.getLogger("portd.registry")

TIMEOUT = 2.0  # seconds for any one request: etcd answers a claim in a few ms
RETRY = 0.5  # seconds between keep-alives while etcd is out of reach
T = TypeVar("T")
Op = dict[str, Any]  # a compare or a request op, as the gateway takes it

# gRPC status codes the gateway reports in its error body.
_INVALID_ARGUMENT, _NOT_FOUND, _OUT_OF_RANGE = 3, 5, 11


class EtcdUnavailable(RegistryUnavailable):
    """etcd did not answer, or answered that it cannot serve: a fault of the cluster or the
    network, never of the request. The call may be retried when it clears."""


class LeaseNotFound(Exception):
    """A put named an etcd lease that has expired (its keys are gone with it)."""


class Compacted(Exception):
    """A read at a revision that etcd has compacted away."""


class EtcdRequestError(Exception):
    """etcd refused the request itself (InvalidArgument): a bug of ours, not a fault."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes  # b"" when read with keys_only
    create_revision: int
    mod_revision: int
    lease: int  # 0: none


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    count: int  # how many keys the range holds, even when a limit cut `kvs` short
    more: bool  # a limit cut it short


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    ranges: list[RangeResult]  # each range op of the branch taken, in order


# --- ops -----------------------------------------------------------------------------------


def encode(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix` (ASCII prefixes only)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def put(key: str, value: str | bytes, lease: int = 0) -> Op:
    request: dict[str, Any] = {"key": encode(key), "value": encode(value)}
    if lease:
        request["lease"] = lease
    return {"request_put": request}


def delete(key: str, range_end: str | None = None) -> Op:
    request = {"key": encode(key)}
    if range_end is not None:
        request["range_end"] = encode(range_end)
    return {"request_delete_range": request}


def read(
    key: str,
    range_end: str | None = None,
    *,
    keys_only: bool = False,
    count_only: bool = False,
    limit: int = 0,
) -> Op:
    request: dict[str, Any] = {"key": encode(key)}
    if range_end is not None:
        request["range_end"] = encode(range_end)
    if keys_only:
        request["keys_only"] = True
    if count_only:
        request["count_only"] = True
    if limit:
        request["limit"] = limit
    return {"request_range": request}


def absent(key: str) -> Op:
    """Compare: the key does not exist."""
    return {"key": encode(key), "result": "EQUAL", "target": "CREATE", "create_revision": 0}


def unchanged(key: str, mod_revision: int) -> Op:
    """Compare: the key exists and was last written at `mod_revision`."""
    return {"key": encode(key), "result": "EQUAL", "target": "MOD", "mod_revision": mod_revision}


def not_written_since(key: str, range_end: str, revision: int) -> Op:
    """Compare: no key in [key, range_end) was created or changed after `revision`."""
    return {
        "key": encode(key),
        "range_end": encode(range_end),
        "result": "LESS",
        "target": "MOD",
        "mod_revision": revision + 1,
    }


def _kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        base64.b64decode(item["key"]).decode(),
        base64.b64decode(item.get("value", "")),
        int(item.get("create_revision", 0)),
        int(item.get("mod_revision", 0)),
        int(item.get("lease", 0)),
    )


def _range_result(response: dict[str, Any]) -> RangeResult:
    kvs = [_kv(item) for item in response.get("kvs", ())]
    return RangeResult(kvs, int(response.get("count", 0)), bool(response.get("more", False)))


# --- the client ----------------------------------------------------------------------------


class EtcdClient:
    """etcd at `endpoint` (`http://host:port`, or https), one HTTP session per thread."""

    def __init__(self, endpoint: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an etcd endpoint: {endpoint!r} (want http://host:port)")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self._host, self._port, self._scheme = parts.hostname, parts.port or 2379, parts.scheme
        self.timeout = timeout
        self._local = threading.local()
        self._sessions: list[requests.Session | HttpSession] = []
        self._lock = threading.Lock()
        self._api_path: str | None = os.environ.get("ETCD3GW_API_PATH")
        self.fault: str | None = None  # why the last request failed, until one succeeds
        self.log_faults = True

    def _client(self) -> Etcd3Client:
        client: Etcd3Client | None = getattr(self._local, "client", None)
        if client is None:
            session: requests.Session | HttpSession
            if self._scheme == "http":
                session = HttpSession(self._host, self._port, self.timeout)
            else:
                session = requests.Session()
                session.trust_env = False
            with self._lock:
                self._sessions.append(session)
            client = Etcd3Client(
                self._host,
                self._port,
                self._scheme,
                timeout=self.timeout,
                api_path=self._api_path,
                session=cast(requests.Session, session),  # what etcd3gw calls of it, see there
            )
            self._local.client = client
        if self._api_path is None:
            self._api_path = client.api_path  # asks etcd's /version, once per client
        return client

    def call(self, action: Callable[[Etcd3Client], T]) -> T:
        """Run one request; what keeps etcd from answering becomes EtcdUnavailable."""
        try:
            result = action(self._client())
        except gw_errors.ConnectionTimeoutError as exc:
            raise self._failed(f"it did not answer within {self.timeout:g} s", exc) from None
        except gw_errors.ConnectionFailedError as exc:
            raise self._failed(f"it cannot be reached ({_short(exc)})", exc) from None
        except gw_errors.Etcd3Exception as exc:
            raise self._refused(exc) from None
        except requests.RequestException as exc:
            raise self._failed(f"the request failed ({exc})", exc) from None
        except ValueError as exc:  # the answer is not JSON: not an etcd gateway
            reason = f"it answered with something that is not etcd's JSON ({exc})"
            raise self._failed(reason, exc) from None
        if self.fault is not None:
            if self.log_faults:
                log.info("etcd at %s works again (it failed with: %s)", self.endpoint, self.fault)
            self.fault = None
        return result

    def _refused(self, exc: gw_errors.Etcd3Exception) -> Exception:
        """etcd answered with an error: a fault of the cluster (no leader, out of space, a
        timeout inside etcd, auth), or one of the few errors the registry handles."""
        code, message = _error_of(exc)
        if code == _NOT_FOUND and "lease not found" in message:
            return LeaseNotFound(message)
        if code == _OUT_OF_RANGE and "compacted" in message:
            return Compacted(message)
        if code == _INVALID_ARGUMENT:
            return EtcdRequestError(message)
        return self._failed(f"it refused the request: {message}", exc)

    def _failed(self, reason: str, exc: BaseException) -> EtcdUnavailable:
        if reason != self.fault:
            self.fault = reason
            if self.log_faults:
                log.error(
                    "registry etcd at %s: %s; calls that need it fail until it recovers",
                    self.endpoint,
                    reason,
                )
        log.debug("etcd request failed", exc_info=exc)
        return EtcdUnavailable(f"the etcd registry at {self.endpoint} cannot be used: {reason}")

    # --- requests --------------------------------------------------------------------------

    def range(
        self,
        key: str,
        range_end: str | None = None,
        *,
        keys_only: bool = False,
        count_only: bool = False,
        limit: int = 0,
        revision: int = 0,
    ) -> tuple[list[KeyValue], int, bool]:
        """The keys in [key, range_end) (just `key` without an end), at `revision` (0: the
        latest), sorted by key; with the revision read at and whether a limit cut it off."""
        payload = read(key, range_end, keys_only=keys_only, count_only=count_only, limit=limit)
        if revision:
            payload["request_range"]["revision"] = revision
        body = payload["request_range"]
        answer = self.call(
            lambda c: cast(dict[str, Any], c.post(c.get_url("/kv/range"), json=body))
        )
        result = _range_result(answer)
        return result.kvs, int(answer["header"]["revision"]), result.more

    def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        kvs, at, _ = self.range(key, revision=revision)
        return (kvs[0] if kvs else None), at

    def count(self, key: str, range_end: str) -> tuple[int, int]:
        """How many keys are in [key, range_end), and the store's revision now: one cheap
        request (no keys are sent)."""
        body = read(key, range_end, count_only=True)["request_range"]
        answer = self.call(
            lambda c: cast(dict[str, Any], c.post(c.get_url("/kv/range"), json=body))
        )
        return int(answer.get("count", 0)), int(answer["header"]["revision"])

    def txn(
        self, compare: Sequence[Op], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One transaction: if every compare holds, the success ops, else the failure ops."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        answer = cast(dict[str, Any], self.call(lambda c: c.transaction(body)))
        ranges = [
            _range_result(response["response_range"])
            for response in answer.get("responses", ())
            if "response_range" in response
        ]
        succeeded = bool(answer.get("succeeded", False))
        return TxnResult(succeeded, int(answer["header"]["revision"]), ranges)

    def grant(self, ttl: int) -> int:
        return self.call(lambda c: c.lease(ttl)).id

    def keepalive(self, lease_id: int) -> int:
        """Refresh the lease: its TTL, or -1 when it has expired."""
        return self.call(lambda c: GwLease(lease_id, c).refresh())

    def revoke(self, lease_id: int) -> None:
        self.call(lambda c: GwLease(lease_id, c).revoke())

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _error_of(exc: gw_errors.Etcd3Exception) -> tuple[int, str]:
    """The gRPC code and message of the gateway's error body, `{"error", "code", ...}`; for
    a body that is not one (not etcd at all), the HTTP reason and the body's start."""
    text = exc.detail_text or ""
    try:
        body = json.loads(text)
        return int(body.get("code", -1)), str(body.get("message") or body.get("error"))
    except (ValueError, TypeError, AttributeError):
        reason = " ".join(str(arg) for arg in exc.args) or type(exc).__name__
        snippet = " ".join(text.split())[:80]
        return -1, f"HTTP {reason}" + (f" ({snippet!r}): is it etcd?" if snippet else "")


def _short(exc: gw_errors.Etcd3Exception) -> str:
    """requests nests the interesting part deep ("...: Failed to establish a new connection:
    [Errno 111] Connection refused')"): keep the end."""
    text = exc.detail_text or str(exc) or type(exc).__name__
    if "] " in text:
        text = text.rsplit("] ", 1)[1].rstrip("')\"")
    return text[:200]


# --- the host lease ------------------------------------------------------------------------


class HostLease:
    """The etcd lease that every lease of this host hangs on, shared by all of the host's
    sidecars: its id is stored under `key` (itself on the lease, so it goes with it), each
    sidecar keeps it alive every TTL/3 from a daemon thread, and a sidecar that finds it
    expired (or missing) grants a new one and stores it with a compare-and-swap, so that the
    host's sidecars agree on one. `stop` ends the keep-alive and never revokes: the other
    sidecars' leases, and the apps' of a sidecar that was killed, hang on it too."""

    def __init__(self, client: EtcdClient, key: str, ttl: int) -> None:
        self._client, self.key, self.ttl = client, key, ttl
        self._id: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.keepalives = 0  # refreshes that etcd accepted, for tests and health
        self.grants = 0  # host leases this process granted and got stored

    @property
    def id(self) -> int:
        """The host lease, found or granted on first use."""
        current = self._id
        if current is not None:
            return current
        with self._lock:
            if self._id is None:
                self._id = self._acquire()
            return self._id

    def lost(self, stale: int) -> None:
        """A put found `stale` expired: the next `id` finds or grants a live one."""
        with self._lock:
            if self._id == stale:
                self._id = None

    def _acquire(self) -> int:
        """The lease stored under `key` if it is alive, else a new one, stored there with a
        compare-and-swap; a sidecar that loses the swap takes the winner's lease."""
        for _ in range(8):
            kv, _ = self._client.get(self.key)
            if kv is not None:
                stored = _stored_lease(kv.value)
                if stored and self._client.keepalive(stored) > 0:
                    return stored
            fresh = self._client.grant(self.ttl)
            value = json.dumps({"lease": fresh, "ttl": self.ttl, "pid": os.getpid()})
            swap = absent(self.key) if kv is None else unchanged(self.key, kv.mod_revision)
            result = self._client.txn([swap], [put(self.key, value, fresh)], [read(self.key)])
            if result.succeeded:
                self.grants += 1
                log.debug("granted host lease %x (TTL %d s) at %s", fresh, self.ttl, self.key)
                return fresh
            self._client.revoke(fresh)  # another sidecar of this host stored one first
            winner = result.ranges[0].kvs[0] if result.ranges and result.ranges[0].kvs else None
            stored = _stored_lease(winner.value) if winner else 0
            if stored and self._client.keepalive(stored) > 0:
                return stored
        raise EtcdUnavailable(f"no host lease could be stored at {self.key}: too much contention")

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._keep_alive, name="portd-etcd-keepalive", daemon=True
        )
        self._thread.start()

    def _keep_alive(self) -> None:
        interval = self.ttl / 3
        while not self._stop.wait(interval):
            interval = self.ttl / 3
            try:
                lease = self.id
                granted = self._client.keepalive(lease)
                if granted > 0:
                    self.keepalives += 1
                    interval = min(self.ttl, granted) / 3  # another sidecar may have granted it
                else:
                    log.warning(
                        "host lease %x expired (etcd was out of reach for over its TTL): the "
                        "leases on it are gone; this host gets a new one",
                        lease,
                    )
                    self.lost(lease)
                    interval = 0.0
            except EtcdUnavailable:
                interval = min(interval, RETRY)  # logged by the client; soon again
            except Exception:
                log.exception("keeping the host lease alive failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._client.timeout + 1)


def _stored_lease(value: bytes) -> int:
    try:
        return int(json.loads(value)["lease"])
    except (ValueError, KeyError, TypeError):
        return 0
