"""The HTTP port under hostile input (issue 18, points 1 and 2): body and header limits, slow and idle
connections, keep-alive, and REST going through the same pool, queue limit, deadlines and metrics as native."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support.hubproc import HubProcess

HTTP_CONFIG = {"hub": {"workers": 2, "queue_limit": 4},
               "http": {"request_timeout_s": 1.0, "idle_timeout_s": 1.0, "max_body_bytes": 64 * 1024}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("echo_hub", tmp_path_factory.mktemp("http"), module="tests.bus.echo_hub",
                    config=HTTP_CONFIG) as hub:
        yield hub


def raw_exchange(hub, request: bytes, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection; return everything the server sends until it closes or pauses."""
    host, port = hub.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        sock.sendall(request)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except TimeoutError:
            pass
        return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def post(hub, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    host, port = hub.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null"), dict(resp.getheaders())
    finally:
        conn.close()


def assert_serving(hub) -> None:
    with urllib.request.urlopen(hub.http_url + "/health", timeout=10) as resp:
        assert resp.status == 200
    with hub.client() as client:
        assert client.call("hub", "ping")["pong"]


def assert_no_traceback(hub) -> None:
    assert "Traceback" not in hub.log_path.read_text(errors="replace")


# ------------------------------------------------------------------------------------------- point 1

@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b"99999999999999999999999"])
def test_bad_content_length_is_a_400_not_a_hang(hub, length):
    request = b"POST /auth/verify HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    response = raw_exchange(hub, request)
    assert response, "the server closed without an answer"
    assert status_of(response) in (400, 413)
    assert_serving(hub)
    assert_no_traceback(hub)


def test_declared_huge_body_is_refused_before_it_is_sent(hub):
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
    response = raw_exchange(hub, request)
    assert status_of(response) == 413 and b"too_large" in response
    assert_serving(hub)


def test_chunked_body_over_the_limit_is_refused(hub):
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert status_of(raw_exchange(hub, request)) == 413
    assert_serving(hub)


def test_deep_json_is_a_clear_400(hub):
    deep = b"[" * 30_000 + b"]" * 30_000        # under the body limit, far over any recursion limit
    status, body, _ = post(hub, "/echo", deep, {"Authorization": f"Bearer {hub.token()}"})
    assert status == 400 and body["error"]["code"] == "bad_request"
    nested: dict = {"word": "w"}
    for _ in range(100):
        nested = {"word": "w", "extra": nested}
    status, body, _ = post(hub, "/echo", json.dumps(nested).encode(), {"Authorization": f"Bearer {hub.token()}"})
    assert status == 400 and "nested" in body["error"]["message"]
    assert_serving(hub)
    assert_no_traceback(hub)


def test_oversized_headers_are_refused(hub):
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    response = raw_exchange(hub, request)
    assert response == b"" or status_of(response) in (400, 431)
    assert_serving(hub)


# ------------------------------------------------------------------------------------------- point 2

def test_slow_and_idle_connections_are_closed(hub):
    host, port = hub.http_url.removeprefix("http://").split(":")
    slow = []
    for _ in range(60):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")   # a head that never ends
        slow.append(sock)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
    try:
        assert_serving(hub)                                   # the slow ones do not block others
        for sock in slow + idle:                              # request_timeout_s = 1: all closed by the server
            assert sock.recv(1024) == b""
    finally:
        for sock in slow + idle:
            sock.close()


def test_keep_alive_serves_several_requests_on_one_connection(hub):
    host, port = hub.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for word in ("a", "b", "c"):
            conn.request("GET", f"/echo/{word}", headers={"Authorization": f"Bearer {hub.token()}"})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["word"] == word
        time.sleep(1.8)                                       # idle_timeout_s = 1: the server closes it
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("GET", "/echo/d", headers={"Authorization": f"Bearer {hub.token()}"})
            conn.getresponse()
    finally:
        conn.close()


def test_http_counts_in_hub_requests_total(hub):
    before = _echo_count(hub)
    status, body, _ = post(hub, "/echo", b'{"word": "m"}', {"Authorization": f"Bearer {hub.token()}"})
    assert status == 200 and body["word"] == "m"
    assert _echo_count(hub) == before + 1


def _echo_count(hub) -> float:
    with urllib.request.urlopen(hub.http_url + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('hub_requests_total{action="echo",agent="EchoAgent",outcome="ok"}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _occupy_workers(hub, count: int, seconds: float) -> list[threading.Thread]:
    def sleeper() -> None:
        with hub.client() as client:
            client.call("EchoAgent", "sleep", {"seconds": seconds})

    threads = [threading.Thread(target=sleeper) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    return threads


def test_http_gets_busy_from_the_shared_queue_limit(hub):
    threads = _occupy_workers(hub, 4, 2.0)                   # queue_limit 4 counts running jobs: full
    try:
        status, body, headers = post(hub, "/echo", b'{"word": "late"}', {"Authorization": f"Bearer {hub.token()}"})
        assert status == 429 and body["error"]["code"] == "busy"
        assert int(headers["retry-after"]) >= 1
    finally:
        for thread in threads:
            thread.join()


def test_http_deadline_gives_504(hub):
    threads = _occupy_workers(hub, 2, 2.0)                   # both workers busy, queue has room
    try:
        status, body, _ = post(hub, "/echo", b'{"word": "slow"}',
                               {"Authorization": f"Bearer {hub.token()}", "X-Deadline-Ms": "300"})
        assert status == 504 and body["error"]["code"] == "timeout"
        status, body, _ = post(hub, "/echo", b'{"word": "x"}',
                               {"Authorization": f"Bearer {hub.token()}", "X-Deadline-Ms": str(2 ** 63)})
        assert status == 400
    finally:
        for thread in threads:
            thread.join()


def test_openapi_document_lists_routes_from_the_schemas(hub):
    with urllib.request.urlopen(hub.http_url + "/openapi.json", timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["openapi"].startswith("3.")
    echo = doc["paths"]["/echo"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert echo["properties"]["n"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": 10}
    assert "word" in echo["required"]
    assert doc["paths"]["/echo/{word}"]["get"]["parameters"][0]["in"] == "path"


# ------------------------------------------------------------------------------------------- query strings
def get_json(hub, path: str) -> tuple[int, dict]:
    request = urllib.request.Request(hub.http_url + path, headers={"Authorization": f"Bearer {hub.token()}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_query_string_values_are_parsed_by_the_schema(hub):
    status, body = get_json(hub, "/words?limit=5&ratio=0.25&exact=true&tags=1,2")
    assert status == 200
    assert body == {"limit": [5, "int"], "ratio": [0.25, "float"], "exact": [True, "bool"],
                    "tags": [[1, 2], "list"]}
    status, body = get_json(hub, "/words")                       # defaults, as for a msgpack call
    assert status == 200 and body["limit"] == [10, "int"] and body["ratio"] == [None, "NoneType"]


@pytest.mark.parametrize("query,field", [("limit=abc", "limit"), ("limit=0", "limit"), ("limit=101", "limit"),
                                         ("ratio=2", "ratio"), ("exact=maybe", "exact"), ("tags=1,x", "tags[1]"),
                                         ("other=1", "other")])
def test_bad_query_values_are_a_400_naming_the_field(hub, query, field):
    status, body = get_json(hub, f"/words?{query}")
    assert status == 400
    assert body["error"]["code"] == "bad_request" and body["error"]["details"]["field"] == field
    assert f"'{field}'" in body["error"]["message"]


def test_query_and_native_calls_get_the_same_refusal(hub):
    _, over_http = get_json(hub, "/words?limit=0")
    with hub.client() as client, pytest.raises(Exception) as native:
        client.call("EchoAgent", "words", {"limit": 0})
    assert over_http["error"]["message"] == native.value.message
