"""Event publishers (edge/runtime/publish.py) with real receivers on loopback, and the ROS 2 bridge's
ROS-free parts (examples/ros2/skelmtl_ros2_bridge.py) fed by a real publisher.

Nothing here sleeps: ZeroMQ's slow-joiner window is crossed by publishing probe events
until the subscriber sees one (``poll`` with a timeout), then the events under test follow.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edge.core.events import Event
from edge.runtime.publish import (
    PUBLISHERS,
    JsonLinesPublisher,
    PublishError,
    UdpPublisher,
    ZmqPublisher,
    encode_event,
    event_topic,
    open_publisher,
    open_publishers,
)

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "examples" / "ros2" / "skelmtl_ros2_bridge.py"

# The runtime's events (schema skelmtl.event/1); publishers take them as objects or dicts.
EVENT_OBJECTS = [
    Event("begin", t=2.5, frame=75, task="action", label="wave", confidence=0.91, start=1.25),
    Event("begin", t=2.75, frame=82, task="gesture", label="thumbs_up", confidence=0.8,
          start=2.0),
    Event("state", t=3.0, frame=90, state="no_person"),
    Event("end", t=4.5, frame=135, task="gesture", label="thumbs_up", confidence=0.93,
          start=2.0, end=4.25, reason="below_exit"),
]
EVENTS: list[dict[str, Any]] = [e.to_dict() for e in EVENT_OBJECTS]
TOPICS = [b"action", b"gesture", b"state", b"gesture"]


def _wait_for_subscription(pub: Any, sub: Any, probe: dict[str, Any]) -> None:
    """Publish ``probe`` until ``sub`` receives one; drain what arrived (the probes)."""
    for _ in range(500):
        pub.publish(probe)
        if sub.poll(10):
            break
    else:
        pytest.fail("the subscriber never received a probe event")
    while sub.poll(50):
        frames = sub.recv_multipart()
        assert json.loads(frames[-1]).get("probe") is True


def _recv_events(sub: Any, n: int) -> list[list[bytes]]:
    """The next ``n`` non-probe messages (frames) on ``sub``; fails after 5 s of silence."""
    out: list[list[bytes]] = []
    while len(out) < n:
        assert sub.poll(5000), f"got {len(out)} of {n} events"
        frames = sub.recv_multipart()
        if not json.loads(frames[-1]).get("probe"):
            out.append(frames)
    return out


def _open_zmq(spec: str) -> ZmqPublisher:
    pub = open_publisher(spec)
    assert isinstance(pub, ZmqPublisher)
    return pub


@pytest.fixture
def zmq_mod() -> ModuleType:
    return pytest.importorskip("zmq")


# ---------------------------------------------------------------- encoding and topics ---

def test_encode_event_is_compact_utf8_json() -> None:
    assert encode_event({"label": "ünï", "c": 0.5}) == '{"label":"ünï","c":0.5}'


def test_encode_event_handles_numpy_scalars_and_to_dict() -> None:
    np = pytest.importorskip("numpy")

    class Ev:
        def to_dict(self) -> dict[str, Any]:
            return {"confidence": np.float32(0.5), "span": np.arange(2), "n": np.int64(3)}

    assert json.loads(encode_event(Ev())) == {"confidence": 0.5, "span": [0, 1], "n": 3}


@pytest.mark.parametrize("bad, message", [
    ({"confidence": math.nan}, "non-finite numbers (fields ['confidence'])"),
    ({"x": object()}, "not JSON-able"),
    (["not", "a", "dict"], "cannot publish a list"),
])
def test_encode_event_refuses(bad: Any, message: str) -> None:
    with pytest.raises(PublishError, match=re.escape(message)):
        encode_event(bad)


@pytest.mark.parametrize("event, prefix, topic", [
    ({"task": "action"}, "skelmtl", "skelmtl.action"),
    ({"task": "gesture"}, "robot1", "robot1.gesture"),
    ({"state": "no_person"}, "skelmtl", "skelmtl.state"),
    ({"task": "a.b c"}, "skelmtl", "skelmtl.a_b_c"),
    ({"task": "action"}, "", "action"),
    (EVENTS[2], "skelmtl", "skelmtl.state"),  # the runtime's events: task null -> kind
    (Event("drop", t=1.0, frame=30, dropped=4, reason="inference behind").to_dict(),
     "skelmtl", "skelmtl.drop"),
    (Event("stream", t=9.0, frame=270, state="ended").to_dict(), "skelmtl", "skelmtl.stream"),
])
def test_event_topic(event: dict[str, Any], prefix: str, topic: str) -> None:
    assert event_topic(event, prefix) == topic


# ---------------------------------------------------------------------- spec parsing ---

@pytest.mark.parametrize("spec, message", [
    ("tcp://localhost:1", "not a publisher spec"),
    ("events.txt", "not a publisher spec"),
    ("udp://127.0.0.1", "no port"),
    ("udp://127.0.0.1:0", "port '0' is not a number in 1..65535"),
    ("udp://127.0.0.1:99999", "port '99999' is not a number in 1..65535"),
    ("udp://:9999", "UDP needs a destination host"),
    ("udp://127.0.0.1:9999/x", "unexpected path '/x'"),
    ("udp://127.0.0.1:9999?hwm=3", r"unknown option\(s\) \['hwm'\] for udp"),
    ("zmq+tcp://127.0.0.1:*?hwm=0", "option hwm=0 must be >= 1"),
    ("zmq+tcp://127.0.0.1:*?linger_ms=soon", "option linger_ms='soon' is not an integer"),
    ("jsonl:/nonexistent-folder/events.jsonl", "folder /nonexistent-folder does not exist"),
    ("jsonl:events.jsonl?append=maybe", "option append='maybe' must be 0 or 1"),
    ("jsonl:", "no file path given"),
])
def test_bad_specs_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(PublishError, match=message):
        open_publisher(spec)


def test_registry_covers_every_documented_scheme() -> None:
    assert set(PUBLISHERS) == {"stdout", "jsonl", "file", "zmq+tcp", "zmq", "zmq+ipc", "udp"}


# ------------------------------------------------------------------------ JSON lines ---

@pytest.mark.parametrize("form", ["jsonl:{p}", "file://{p}", "{p}"])
def test_jsonl_file_round_trip(tmp_path: Path, form: str) -> None:
    path = tmp_path / "events.jsonl"
    with open_publisher(form.format(p=path)) as pub:
        assert isinstance(pub, JsonLinesPublisher)
        for e in EVENT_OBJECTS:
            pub.publish(e)
        assert (pub.sent, pub.dropped) == (len(EVENTS), 0)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == EVENTS
    # What the runtime reads back validates against its schema and equals what was sent.
    assert [Event.from_dict(json.loads(line)) for line in lines] == EVENT_OBJECTS


def test_jsonl_truncates_unless_append(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for spec in (f"jsonl:{path}", f"jsonl:{path}", f"jsonl:{path}?append=1"):
        with open_publisher(spec) as pub:
            pub.publish(EVENTS[0])
    assert len(path.read_text().splitlines()) == 2


@pytest.mark.parametrize("spec", ["-", "stdout", "stdout://"])
def test_stdout_is_one_json_line_per_event(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_publisher(spec) as pub:
        pub.publish(EVENTS[0])
        pub.publish(EVENTS[1])
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == EVENTS[:2]
    assert not sys.stdout.closed  # stdout is borrowed, never closed


def test_closed_publisher_refuses(tmp_path: Path) -> None:
    pub = open_publisher(f"jsonl:{tmp_path / 'e.jsonl'}")
    pub.close()
    pub.close()  # idempotent
    with pytest.raises(PublishError, match="publisher is closed"):
        pub.publish(EVENTS[0])


# --------------------------------------------------------------------------- ZeroMQ ---

@pytest.mark.parametrize("scheme", ["zmq+tcp", "zmq"])
def test_zmq_pub_to_real_sub_with_topic_filter(zmq_mod: ModuleType, scheme: str) -> None:
    zmq = zmq_mod
    with _open_zmq(f"{scheme}://127.0.0.1:*") as pub:
        assert pub.endpoint.startswith("tcp://127.0.0.1:")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"skelmtl.gesture")
            sub.connect(pub.endpoint)
            _wait_for_subscription(pub, sub, {"task": "gesture", "probe": True})
            for e in EVENT_OBJECTS:
                pub.publish(e)
            got = _recv_events(sub, 2)
            assert not sub.poll(100), "an action or state event passed the gesture filter"
        finally:
            sub.close()
            ctx.term()
    gestures = [e for e in EVENTS if e.get("task") == "gesture"]
    assert [f[0] for f in got] == [b"skelmtl.gesture"] * 2
    assert [json.loads(f[1]) for f in got] == gestures


def test_zmq_all_topics_and_custom_prefix(zmq_mod: ModuleType) -> None:
    zmq = zmq_mod
    with _open_zmq("zmq+tcp://127.0.0.1:*?topic=robot7&hwm=10") as pub:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"robot7")
            sub.connect(pub.endpoint)
            _wait_for_subscription(pub, sub, {"task": "action", "probe": True})
            for e in EVENT_OBJECTS:
                pub.publish(e)
            got = _recv_events(sub, len(EVENTS))
        finally:
            sub.close()
            ctx.term()
    assert [f[0] for f in got] == [b"robot7." + t for t in TOPICS]
    assert [json.loads(f[1]) for f in got] == EVENTS


def test_zmq_ipc(zmq_mod: ModuleType, tmp_path: Path) -> None:
    zmq = zmq_mod
    path = tmp_path / "events.sock"
    with _open_zmq(f"zmq+ipc://{path}") as pub:
        assert pub.endpoint == f"ipc://{path}"
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(pub.endpoint)
            _wait_for_subscription(pub, sub, {"task": "action", "probe": True})
            pub.publish(EVENTS[0])
            got = _recv_events(sub, 1)
        finally:
            sub.close()
            ctx.term()
    assert json.loads(got[0][1]) == EVENTS[0]


def test_zmq_port_in_use_is_a_clear_error(zmq_mod: ModuleType) -> None:
    with _open_zmq("zmq+tcp://127.0.0.1:*") as first:
        port = first.endpoint.rsplit(":", 1)[1]
        with pytest.raises(PublishError, match=f"cannot bind tcp://127.0.0.1:{port}"):
            open_publisher(f"zmq+tcp://127.0.0.1:{port}")


# ------------------------------------------------------------------------------ UDP ---

@pytest.fixture
def udp_receiver() -> Any:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_udp_one_datagram_per_event(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    with open_publisher(f"udp://127.0.0.1:{port}") as pub:
        assert isinstance(pub, UdpPublisher)
        for e in EVENTS:
            pub.publish(e)
        assert (pub.sent, pub.dropped) == (len(EVENTS), 0)
    datagrams = [udp_receiver.recv(65535) for _ in EVENTS]
    assert all(d.endswith(b"\n") and d.count(b"\n") == 1 for d in datagrams)
    assert [json.loads(d) for d in datagrams] == EVENTS


def test_udp_refuses_an_event_larger_than_a_datagram(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    with open_publisher(f"udp://127.0.0.1:{port}") as pub:
        with pytest.raises(PublishError, match="exceeds one UDP datagram"):
            pub.publish({"blob": "x" * 70_000})


# --------------------------------------------------------------------------- fan-out ---

def test_fanout_to_file_and_udp(tmp_path: Path, udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    path = tmp_path / "events.jsonl"
    with open_publishers([f"jsonl:{path}", f"udp://127.0.0.1:{port}"]) as pub:
        for e in EVENTS[:2]:
            pub.publish(e)
    assert [json.loads(x) for x in path.read_text().splitlines()] == EVENTS[:2]
    assert [json.loads(udp_receiver.recv(65535)) for _ in range(2)] == EVENTS[:2]


def test_fanout_closes_what_it_opened_when_one_spec_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    original = JsonLinesPublisher._close

    def recording_close(self: JsonLinesPublisher) -> None:
        closed.append(self.spec)
        original(self)

    monkeypatch.setattr(JsonLinesPublisher, "_close", recording_close)
    path = tmp_path / "events.jsonl"
    with pytest.raises(PublishError, match="unknown option"):
        open_publishers([f"jsonl:{path}", "udp://127.0.0.1:9?bogus=1"])
    assert closed == [f"jsonl:{path}"]


# ------------------------------------------------------------------ the ROS 2 bridge ---

@pytest.fixture(scope="module")
def bridge() -> ModuleType:
    spec = importlib.util.spec_from_file_location("skelmtl_ros2_bridge", BRIDGE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bridge_imports_rclpy_and_zmq_lazily(bridge: ModuleType) -> None:
    assert not {"rclpy", "zmq", "std_msgs"} & set(vars(bridge))
    with pytest.raises(SystemExit) as exit_info:  # argparse runs before any ROS import
        bridge.main(["--bogus"])
    assert exit_info.value.code == 2


def test_bridge_main_needs_rclpy_only_when_run(bridge: ModuleType,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rclpy", None)  # "not installed", whatever the host has
    with pytest.raises(ImportError, match="rclpy"):
        bridge.main(["--events", "udp://127.0.0.1:9999", "--ros-args", "-r", "__node:=b"])


class FakeString:
    """Stands in for std_msgs.msg.String: a class with a ``data`` attribute."""

    data: str = ""


def test_bridge_string_message_is_sorted_compact_json(bridge: ModuleType) -> None:
    msg = bridge.event_to_string_msg({"label": "wave", "confidence": 0.9, "task": "action"},
                                     FakeString)
    assert msg.data == '{"confidence":0.9,"label":"wave","task":"action"}'


@pytest.mark.parametrize("event, topic", [
    ({"task": "action"}, "/skelmtl/events/action"),
    ({"task": "gesture"}, "/skelmtl/events/gesture"),
    ({"state": "no_hands"}, "/skelmtl/events/state"),
    ({"task": "two words"}, "/skelmtl/events/two_words"),
    ({"task": "3d"}, "/skelmtl/events/t_3d"),
])
def test_bridge_task_topic(bridge: ModuleType, event: dict[str, Any], topic: str) -> None:
    assert bridge.task_topic("/skelmtl/events/", event) == topic


@pytest.mark.parametrize("seconds, fields", [
    (1.25, (1, 250_000_000)),
    (0.0, (0, 0)),
    (2.9999999999, (3, 0)),  # rounds to the nanosecond and carries into sec
    (None, (0, 0)),
    (math.inf, (0, 0)),
])
def test_bridge_seconds_to_time(bridge: ModuleType, seconds: float | None,
                                fields: tuple[int, int]) -> None:
    assert bridge.seconds_to_time(seconds) == fields


def test_bridge_typed_fields(bridge: ModuleType) -> None:
    f = bridge.event_to_typed_fields(EVENTS[3])
    assert (f["schema"], f["kind"], f["frame"]) == ("skelmtl.event/1", "end", 135)
    assert (f["task"], f["label"], f["confidence"]) == ("gesture", "thumbs_up",
                                                        pytest.approx(0.93))
    assert (f["t"], f["start"], f["end"]) == ((4, 500_000_000), (2, 0), (4, 250_000_000))
    assert (f["state"], f["dropped"], f["reason"]) == ("", 0, "below_exit")
    assert json.loads(f["json"]) == EVENTS[3]
    state = bridge.event_to_typed_fields(EVENTS[2])
    assert (state["kind"], state["task"], state["label"], state["state"]) == (
        "state", "", "", "no_person")
    assert math.isnan(state["confidence"]) and state["start"] == (0, 0)


def test_bridge_refuses_an_unknown_schema_major(bridge: ModuleType) -> None:
    with pytest.raises(ValueError, match="knows major version 1"):
        bridge.event_to_typed_fields({"schema": "skelmtl.event/2", "task": "action"})


@pytest.mark.parametrize("payload, message", [
    (b"[1, 2]", "not an object"),
    (b"{not json", "Expecting property name"),
])
def test_bridge_decode_refuses(bridge: ModuleType, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bridge.decode_payload(payload)


def _drain_until(drain: Any, n: int) -> list[dict[str, Any]]:
    """Decode payloads from a bridge source until ``n`` non-probe events arrived."""
    events: list[dict[str, Any]] = []
    while len(events) < n:
        got = [e for e in map(bridge_decode, drain(timeout=5.0)) if not e.get("probe")]
        assert got or events, "no event arrived within 5 s"
        events += got
    return events


def bridge_decode(payload: bytes) -> dict[str, Any]:
    return dict(json.loads(payload))


def test_bridge_source_receives_from_a_real_publisher(bridge: ModuleType,
                                                      zmq_mod: ModuleType) -> None:
    """skelmtl's ZeroMQ publisher -> the bridge's SUB source -> String messages."""
    with _open_zmq("zmq+tcp://127.0.0.1:*") as pub:
        drain, close = bridge.open_source(pub.endpoint.replace("tcp://", "zmq+tcp://"))
        try:
            for _ in range(500):  # slow joiner: probe until the subscription is live
                pub.publish({"task": "action", "probe": True})
                if drain(timeout=0.01):
                    break
            else:
                pytest.fail("the bridge never received a probe")
            for e in EVENT_OBJECTS:
                pub.publish(e)
            events = _drain_until(drain, len(EVENTS))
        finally:
            close()
    assert events == EVENTS
    msgs = [bridge.event_to_string_msg(e, FakeString) for e in events]
    assert [json.loads(m.data) for m in msgs] == EVENTS
    assert [bridge.task_topic("/skelmtl/events", e) for e in events] == [
        "/skelmtl/events/action", "/skelmtl/events/gesture", "/skelmtl/events/state",
        "/skelmtl/events/gesture"]


def test_bridge_udp_source(bridge: ModuleType) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a free port for the bridge to bind (loopback; a race is unlikely)
    drain, close = bridge.open_source(f"udp://127.0.0.1:{port}")
    try:
        with open_publisher(f"udp://127.0.0.1:{port}") as pub:
            for e in EVENTS:
                pub.publish(e)
        assert _drain_until(drain, len(EVENTS)) == EVENTS
    finally:
        close()


@pytest.mark.parametrize("spec, message", [
    ("tcp://127.0.0.1:5556", "use zmq"),
    ("udp://127.0.0.1", "no port"),
])
def test_bridge_bad_source(bridge: ModuleType, spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bridge.open_source(spec)


# ------------------------------------------------ safe defaults: localhost, CURVE (issue 15)
@pytest.mark.parametrize("spec,bound", [
    ("zmq+tcp://:*", "tcp://127.0.0.1:"),
    ("zmq://:*", "tcp://127.0.0.1:"),
    ("zmq+tcp://127.0.0.1:*", "tcp://127.0.0.1:"),
    ("zmq+tcp://localhost:*", "tcp://127.0.0.1:"),
])
def test_zmq_without_a_host_binds_localhost_only(zmq_mod: ModuleType, spec: str, bound: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="edge.runtime.publish"), _open_zmq(spec) as pub:
        assert pub.endpoint.startswith(bound)
    assert caplog.records == []


@pytest.mark.parametrize("spec", ["zmq+tcp://*:*", "zmq+tcp://0.0.0.0:*"])
def test_zmq_on_every_interface_without_curve_warns(zmq_mod: ModuleType, spec: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="edge.runtime.publish"), _open_zmq(spec) as pub:
        assert pub.endpoint.startswith("tcp://0.0.0.0:")
    assert [r.getMessage() for r in caplog.records] == [
        f"{spec}: publishing on every interface without authentication; any machine that "
        f"reaches the port reads the events (see docs/runtime.md: bind to an interface, or "
        f"add ?curve_secret=)"]


@pytest.fixture()
def certs(zmq_mod: ModuleType, tmp_path: Path) -> dict[str, Path]:
    import zmq.auth

    if not zmq_mod.has("curve"):
        pytest.skip("libzmq without CURVE")
    (tmp_path / "server").mkdir()
    (tmp_path / "clients").mkdir()
    (tmp_path / "other").mkdir()
    pub, sec = zmq.auth.create_certificates(str(tmp_path / "server"), "server")
    cpub, csec = zmq.auth.create_certificates(str(tmp_path / "clients"), "robot")
    _, osec = zmq.auth.create_certificates(str(tmp_path / "other"), "stranger")
    return {"server_public": Path(pub), "server_secret": Path(sec), "clients": tmp_path /
            "clients", "client_secret": Path(csec), "stranger_secret": Path(osec)}


def _curve_sub(zmq: ModuleType, ctx: Any, certs: dict[str, Path], client: str) -> Any:
    import zmq.auth

    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    cpub, csec = zmq.auth.load_certificate(str(certs[client]))
    spub, _ = zmq.auth.load_certificate(str(certs["server_public"]))
    sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = cpub, csec, spub
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    return sub


def test_zmq_curve_admits_a_listed_client(zmq_mod: ModuleType, certs: dict[str, Path],
                                          caplog: pytest.LogCaptureFixture) -> None:
    zmq = zmq_mod
    spec = (f"zmq+tcp://*:*?curve_secret={certs['server_secret']}"
            f"&curve_clients={certs['clients']}")
    with caplog.at_level("WARNING", logger="edge.runtime.publish"), _open_zmq(spec) as pub:
        ctx = zmq.Context()
        sub = _curve_sub(zmq, ctx, certs, "client_secret")
        try:
            sub.connect(pub.endpoint.replace("0.0.0.0", "127.0.0.1"))
            _wait_for_subscription(pub, sub, {"task": "gesture", "probe": True})
            pub.publish(EVENTS[0])
            got = _recv_events(sub, 1)
        finally:
            sub.close()
            ctx.term()
    assert json.loads(got[0][1]) == EVENTS[0]
    assert caplog.records == []  # CURVE on: no warning about an open port


@pytest.mark.parametrize("query,message", [
    ("curve_secret={tmp}/nope.key_secret",
     "zmq+tcp://127.0.0.1:*?curve_secret={tmp}/nope.key_secret: curve_secret "
     "{tmp}/nope.key_secret: no such file"),
    ("curve_secret={public}",
     "zmq+tcp://127.0.0.1:*?curve_secret={public}: curve_secret {public}: holds no secret "
     "key (give the .key_secret file)"),
    ("curve_clients={tmp}",
     "zmq+tcp://127.0.0.1:*?curve_clients={tmp}: curve_clients needs curve_secret (the "
     "server's secret certificate)"),
    ("curve_secret={secret}&curve_clients={tmp}/none",
     "zmq+tcp://127.0.0.1:*?curve_secret={secret}&curve_clients={tmp}/none: curve_clients "
     "{tmp}/none: no such folder"),
])
def test_zmq_curve_errors_name_the_file(zmq_mod: ModuleType, certs: dict[str, Path],
                                        tmp_path: Path, query: str, message: str) -> None:
    fill = {"tmp": tmp_path, "public": certs["server_public"],
            "secret": certs["server_secret"]}
    with pytest.raises(PublishError) as e:
        open_publisher(f"zmq+tcp://127.0.0.1:*?{query.format(**fill)}")
    assert str(e.value) == message.format(**fill)


# ------------------------------------------- the bridge bounds untrusted input (issue 15)
@pytest.mark.parametrize("payload, message", [
    (b"{" + b" " * 70_000 + b"}", "event of 70002 bytes exceeds 65536"),
    (b"{\"a\": " + b"[" * 30_000 + b"]" * 30_000 + b"}", "event nested 30001 deep exceeds 4"),
    (b'{"a": [[[[1]]]]}', "event nested 5 deep exceeds 4"),
    (b"[" * 60_000, "event nested 60000 deep exceeds 4"),
    (b'{"task": "\xff"}', "'utf-8' codec can't decode byte 0xff in position 10: invalid "
                          "start byte"),
    (b'"just a string"', "event is a JSON str, not an object"),
    (b"", "Expecting value: line 1 column 1 (char 0)"),
])
def test_bridge_decode_bounds(bridge: ModuleType, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError) as e:
        bridge.decode_payload(payload)
    assert str(e.value) == message


@pytest.mark.parametrize("text, depth", [
    ('{"a": "[[[[[[["}', 1),  # brackets inside strings do not count
    ('{"a": "\\"[[[", "b": [1]}', 2),
    ('{"a": {"b": [1, {"c": 2}]}}', 4),
    ("{}", 1),
])
def test_bridge_nesting_depth(bridge: ModuleType, text: str, depth: int) -> None:
    assert bridge.nesting_depth(text) == depth
    assert bridge.decode_payload(text) == json.loads(text)


def test_bridge_creates_a_bounded_number_of_topics(bridge: ModuleType) -> None:
    created: list[str] = []
    table = bridge.TopicTable(lambda t: created.append(t) or t, limit=3)
    got = [table.get(bridge.task_topic("/e", {"task": f"task{i}"})) for i in range(10)]
    assert got == ["/e/task0", "/e/task1", "/e/task2"] + [None] * 7
    assert created == ["/e/task0", "/e/task1", "/e/task2"] and table.refused == 7
    assert table.get("/e/task1") == "/e/task1"  # known topics keep working


def test_bridge_topic_names_are_short_and_ascii(bridge: ModuleType) -> None:
    assert bridge.task_topic("/e", {"task": "x" * 10_000}) == "/e/" + "x" * 64
    assert bridge.task_topic("/e", {"task": "\u00e9t\u00e9"}) == "/e/t"



def test_bridge_reads_a_curve_publisher(bridge: ModuleType, certs: dict[str, Path]) -> None:
    spec = (f"zmq+tcp://127.0.0.1:*?curve_secret={certs['server_secret']}"
            f"&curve_clients={certs['clients']}")
    with _open_zmq(spec) as pub:
        drain, close = bridge.open_source(pub.endpoint.replace("tcp://", "zmq+tcp://"),
                                          curve_server_key=str(certs["server_public"]),
                                          curve_client_cert=str(certs["client_secret"]))
        try:
            for _ in range(500):  # slow joiner, and the CURVE handshake
                pub.publish({"task": "action", "probe": True})
                if drain(timeout=0.01):
                    break
            else:
                pytest.fail("the bridge never received a probe")
            pub.publish(EVENTS[0])
            got = _drain_until(drain, 1)
        finally:
            close()
    assert got == [EVENTS[0]]


def test_bridge_curve_needs_both_keys(bridge: ModuleType, certs: dict[str, Path]) -> None:
    with pytest.raises(ValueError) as e:
        bridge.open_source("zmq+tcp://127.0.0.1:5999",
                           curve_server_key=str(certs["server_public"]))
    assert str(e.value) == ("CURVE needs both the server's public key and this client's "
                            "certificate")
