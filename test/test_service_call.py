"""A reply lost between server and client (DDS discovery not finished on the server's side)
does not hang the caller: hilserl_ros.ros.service.call sends the request again."""
import threading
import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from std_srvs.srv import SetBool

from hilserl_ros.ros import service

pytestmark = pytest.mark.ros


class ForgetfulServer:
    """A SetBool server on its own context, served by hand: the first ``drop`` requests are
    taken and never answered, as a reply the network lost."""

    def __init__(self, drop: int):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("forgetful", context=self.context)
        self.srv = self.node.create_service(SetBool, "/forgetful/set", lambda req, res: res)
        self.drop = drop
        self.taken: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self.srv.handle:
                taken = self.srv.handle.service_take_request(SetBool.Request)
            if taken is None or taken[0] is None:
                time.sleep(0.005)
                continue
            request, header = taken
            self.taken.append(request.data)
            if len(self.taken) <= self.drop:
                continue
            self.srv.send_response(SetBool.Response(success=request.data, message="answered"), header)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def forgetful():
    servers = []

    def make(drop: int) -> ForgetfulServer:
        servers.append(ForgetfulServer(drop))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_lost_reply_is_asked_for_again(ros, forgetful):
    server = forgetful(drop=1)
    client = ros.node("caller").create_client(SetBool, "/forgetful/set")
    reply = service.call(client, SetBool.Request(data=True), timeout=20, resend_every=0.5)
    assert reply.success and reply.message == "answered"
    assert server.taken == [True, True]  # the one dropped and the one answered


def test_no_reply_at_all_is_a_timeout_that_says_how_often_it_asked(ros, forgetful):
    server = forgetful(drop=1000)
    client = ros.node("caller").create_client(SetBool, "/forgetful/set")
    with pytest.raises(TimeoutError, match=r"no reply from /forgetful/set in 2.0 s \(\d+ request\(s\) sent\)"):
        service.call(client, SetBool.Request(data=False), timeout=2.0, resend_every=0.5)
    assert len(server.taken) >= 1
    assert client._pending_requests == {}  # nothing left waiting for replies that will never come
