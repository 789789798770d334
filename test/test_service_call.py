"""A reply lost between server and client (DDS discovery not finished on the server's side)
does not hang the caller: hilserl_ros.ros.service.call sends the request again."""
import pytest
from std_srvs.srv import SetBool

from hilserl_ros.ros import service
from ros_harness import ForgetfulServer

pytestmark = pytest.mark.ros


@pytest.fixture
def forgetful():
    servers = []

    def make(drop: int) -> ForgetfulServer:
        servers.append(ForgetfulServer(SetBool, "/forgetful/set", drop,
                                       lambda req: SetBool.Response(success=req.data, message="answered")))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_lost_reply_is_asked_for_again(ros, forgetful):
    server = forgetful(drop=1)
    client = ros.node("caller").create_client(SetBool, "/forgetful/set")
    reply = service.call(client, SetBool.Request(data=True), timeout=20, resend_every=0.5)
    assert reply.success and reply.message == "answered"
    assert [r.data for r in server.taken] == [True, True]  # the one dropped and the one answered


def test_no_reply_at_all_is_a_timeout_that_says_how_often_it_asked(ros, forgetful):
    server = forgetful(drop=1000)
    client = ros.node("caller").create_client(SetBool, "/forgetful/set")
    with pytest.raises(TimeoutError, match=r"no reply from /forgetful/set in 2.0 s \(\d+ request\(s\) sent\)"):
        service.call(client, SetBool.Request(data=False), timeout=2.0, resend_every=0.5)
    assert len(server.taken) >= 1
    assert client._pending_requests == {}  # nothing left waiting for replies that will never come
