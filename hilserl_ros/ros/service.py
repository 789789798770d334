"""A service call that survives a reply lost in discovery, from a thread that is not the executor's.

A client's ``service_is_ready()`` says its request writer has found the server; it does not say
the server has found the client's reply reader yet. On a loaded machine DDS can take seconds
to finish that second half, and a reply sent before it is dropped (no error on either side):
the call then waits forever. A person at ``ros2 param set`` just runs it again; this does the
same. Only for idempotent requests (set/get/describe parameters, torque on/off, save to a
path): the server may see the request twice.
"""
from __future__ import annotations

import time
from typing import Any


def call(client, request, timeout: float = 10.0, resend_every: float = 3.0, period: float = 0.01) -> Any:
    """Sends ``request`` and waits for a reply, sending it again every ``resend_every`` seconds
    without one; the first reply wins. Raises TimeoutError when no reply comes in ``timeout``.
    The node of ``client`` must be spun by an executor on another thread."""
    deadline = time.monotonic() + timeout
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {client.srv_name} not available after {timeout:.1f} s")
    futures = []
    sent = float("-inf")
    try:
        while True:
            for future in futures:
                if future.done():
                    return future.result()
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"no reply from {client.srv_name} in {timeout:.1f} s "
                                   f"({len(futures)} request(s) sent)")
            if now - sent >= resend_every:
                futures.append(client.call_async(request))
                sent = now
            time.sleep(period)
    finally:
        for future in futures:  # the replies still owed are of no use now
            if not future.done():
                client.remove_pending_request(future)
