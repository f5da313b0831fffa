"""A component's wasi:http/outgoing-handler calls, sent to the http-client its link names.

Called from the component's worker thread (a guest's import call is synchronous); the
wRPC call runs on the host's event loop. Every failure reaches the guest as a wasi:http
error-code: the provider's own, or `internal-error` with a sentence saying what to fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from host_agent.host.links import LinkIndex
from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.http_outgoing import (
    OUTGOING_INSTANCE,
    HttpErrorCode,
    RequestTimeouts,
    decode_handle_result,
    encode_handle_params,
    pending_result_paths,
)
from host_agent.wrpc.transport import NoResponders, WrpcClient, WrpcError

# The host's own limit on one exchange; the provider enforces the request's timeouts
# (and its configured ones) and answers before this, so it only ends calls to a
# provider that went away mid-call.
SAFETY_TIMEOUT = 30.0


def wait_limit(timeouts: RequestTimeouts | None) -> float:
    """How long to wait for the provider: at least SAFETY_TIMEOUT, longer when the
    component's own timeouts add up to more."""
    if timeouts is None:
        return SAFETY_TIMEOUT
    given = [t for t in (timeouts.connect, timeouts.first_byte, timeouts.between_bytes) if t]
    return max(SAFETY_TIMEOUT, sum(given) + 5.0)


class LinkedOutgoingHttp:
    def __init__(
        self,
        component_id: str,
        links: Callable[[], LinkIndex],
        client: WrpcClient,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.component_id = component_id
        self._links = links
        self._client = client
        self._loop = loop

    def send(
        self, request: HttpRequest, timeouts: RequestTimeouts | None
    ) -> HttpResponse | HttpErrorCode:
        target = self._links().target_for(self.component_id, "wasi", "http", "outgoing-handler")
        if target is None:
            return HttpErrorCode(
                "internal-error",
                f"{self.component_id} has no link for wasi:http/outgoing-handler; put a link "
                "from it to an http-client provider",
            )
        limit = wait_limit(timeouts)
        call = self._client.invoke(
            target,
            OUTGOING_INSTANCE,
            "handle",
            encode_handle_params(request, timeouts),
            pending_results=pending_result_paths,
            source_id=self.component_id,
            timeout=limit,
        )
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return decode_handle_result(future.result(limit + 1))
        except NoResponders:
            message = f"http-client provider {target} is not running; start it"
        except (WrpcError, DecodeError) as error:
            message = f"http-client provider {target}: {error}"
        except TimeoutError:
            future.cancel()
            message = f"http-client provider {target} did not answer within {limit:g} s"
        return HttpErrorCode("internal-error", message)
