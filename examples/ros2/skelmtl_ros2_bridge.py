"""ROS 2 bridge: republish skelmtl events from ZeroMQ (or UDP) on ROS 2 topics.

Usage: python3 skelmtl_ros2_bridge.py --events zmq+tcp://127.0.0.1:5556 [--topic /skelmtl/events]

Run ``skelmtl run ... --publish 'zmq+tcp://127.0.0.1:5556'`` (or the Jetson container) first, then
this node in a sourced ROS 2 environment (Humble or newer). Each event becomes one
``std_msgs/msg/String`` whose ``data`` is the event's JSON, published on ``--topic``
(all events) and on ``<topic>/<task>`` (``/skelmtl/events/action``, ``.../gesture``,
``.../state``). README.md beside this file documents the JSON and a proposed typed message.

rclpy and pyzmq are imported inside :func:`main`, so this file imports without ROS; the
conversion functions below are plain Python and are what the tests check.

Whatever reaches the socket is untrusted: a payload larger than :data:`MAX_PAYLOAD_BYTES`,
nested deeper than :data:`MAX_DEPTH` or not a JSON object is skipped with a warning, and at
most :data:`MAX_TASK_TOPICS` per-task topics are ever created (a new task string beyond
that goes to the main topic only), so that no sender can exhaust the node.
"""

from __future__ import annotations

import argparse
import json
import math
import select
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TOPIC = "/skelmtl/events"
ZMQ_TOPIC_PREFIX = "skelmtl"
# How often the ROS timer drains the event socket; events are queued meanwhile, not lost.
POLL_PERIOD_S = 0.01
# The schema the bridge was written against; newer minor fields pass through untouched.
KNOWN_SCHEMA_MAJOR = 1
# Bounds on untrusted input. An event is a flat JSON object of a few hundred bytes.
MAX_PAYLOAD_BYTES = 65_536
MAX_DEPTH = 4  # the object itself is depth 1
MAX_TASK_TOPICS = 32
MAX_TOPIC_PART = 64  # characters of a task name kept in a topic name


def decode_payload(payload: bytes | str) -> dict[str, Any]:
    """Parse one event (the JSON frame of a ZeroMQ message, or one UDP datagram).

    Raises:
        ValueError: larger than :data:`MAX_PAYLOAD_BYTES`, not UTF-8, not JSON, nested
            deeper than :data:`MAX_DEPTH`, or not a JSON object.
    """
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"event of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    text = raw.decode("utf-8")
    # Measured before parsing: json's recursive decoder must never see a deep payload.
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise ValueError(f"event nested {depth} deep exceeds {MAX_DEPTH}")
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError(f"event is a JSON {type(event).__name__}, not an object")
    return event


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of JSON text, brackets inside strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


class TopicTable:
    """Per-task ROS publishers, at most ``limit`` of them (new task strings are untrusted).

    Args:
        create: makes the publisher of a topic name.
        limit: how many topics may be created.
    """

    def __init__(self, create: Callable[[str], Any], limit: int = MAX_TASK_TOPICS) -> None:
        self.create = create
        self.limit = limit
        self.publishers: dict[str, Any] = {}
        self.refused = 0

    def get(self, topic: str) -> Any:
        """The topic's publisher, created on first use; None once ``limit`` is reached."""
        pub = self.publishers.get(topic)
        if pub is None:
            if len(self.publishers) >= self.limit:
                self.refused += 1
                return None
            pub = self.publishers[topic] = self.create(topic)
        return pub


def task_topic(base: str, event: Mapping[str, Any]) -> str:
    """``<base>/<task>`` for ``begin``/``end`` events (``.../action``, ``.../gesture``), else
    ``<base>/<kind>`` (``.../state``, ``.../drop``, ``.../stream``), reduced to characters
    legal in a ROS 2 topic name; the same split as the ZeroMQ topics of ``edge.runtime.publish``."""
    task = str(event.get("task") or event.get("kind") or "state")
    safe = "".join(c if c.isascii() and c.isalnum() or c == "_" else "_"
                   for c in task[:MAX_TOPIC_PART]).strip("_") or "state"
    if safe[0].isdigit():
        safe = f"t_{safe}"
    return f"{base.rstrip('/')}/{safe}"


def event_to_string_msg(event: Mapping[str, Any], msg_cls: Callable[[], Any]) -> Any:
    """A ``std_msgs/msg/String`` (or any class with a ``data`` attribute) carrying the JSON.

    The JSON is re-serialised compactly with sorted keys, so equal events give equal
    messages whatever the producer's key order.
    """
    msg = msg_cls()
    msg.data = json.dumps(dict(event), separators=(",", ":"), sort_keys=True)
    return msg


def seconds_to_time(t: float | None) -> tuple[int, int]:
    """Seconds (float) -> ``builtin_interfaces/Time`` fields ``(sec, nanosec)``; None -> (0, 0).

    Rounds to the nearest nanosecond and carries into ``sec`` when that reaches 1e9.
    """
    if t is None or not math.isfinite(float(t)):
        return 0, 0
    total_ns = round(float(t) * 1e9)
    sec, nanosec = divmod(total_ns, 1_000_000_000)
    return int(sec), int(nanosec)


def event_to_typed_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of the proposed ``skelmtl_msgs/msg/SkeletonEvent`` (see README.md).

    Fields that do not apply to an event kind (``null`` in the JSON) get neutral values:
    empty string, 0, NaN for ``confidence``, time ``(0, 0)``. Times are ``(sec, nanosec)``.

    Raises:
        ValueError: a schema major version this bridge does not know.
    """
    schema = str(event.get("schema") or "")
    major = _schema_major(schema)
    if major is not None and major != KNOWN_SCHEMA_MAJOR:
        raise ValueError(f"event schema {schema!r}: this bridge knows major version "
                         f"{KNOWN_SCHEMA_MAJOR}")
    conf = event.get("confidence")
    return {
        "schema": schema,
        "kind": str(event.get("kind") or ""),
        "t": seconds_to_time(event.get("t")),
        "frame": int(event.get("frame") or 0),
        "task": str(event.get("task") or ""),
        "label": str(event.get("label") or ""),
        "confidence": float(conf) if conf is not None else math.nan,
        "start": seconds_to_time(event.get("start")),
        "end": seconds_to_time(event.get("end")),
        "state": str(event.get("state") or ""),
        "dropped": int(event.get("dropped") or 0),
        "reason": str(event.get("reason") or ""),
        "json": json.dumps(dict(event), separators=(",", ":"), sort_keys=True),
    }


def _schema_major(schema: str) -> int | None:
    # "skelmtl.event/1" or "1" or "1.2" -> 1; anything else -> None (not checked).
    tail = schema.rsplit("/", 1)[-1]
    head = tail.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def open_source(spec: str, *, curve_server_key: str | None = None,
                curve_client_cert: str | None = None
                ) -> tuple[Callable[..., list[bytes]], Callable[[], None]]:
    """``drain(timeout=0.0) -> [json payloads]`` and ``close()`` for a source spec.

    For a publisher with CURVE on (``skelmtl run --publish '...?curve_secret=...'``), give
    ``curve_server_key`` (the server's public certificate file) and ``curve_client_cert``
    (this client's secret certificate file, from ``zmq.auth.create_certificates``).

    ``drain`` returns every payload already received; with ``timeout`` (seconds) it first
    waits up to that long for one to arrive. The ROS timer calls it with no timeout.

    ``zmq+tcp://HOST:PORT`` (or ``zmq://``) and ``zmq+ipc:///PATH`` connect a SUB socket
    (subscribed to ``skelmtl``, i.e. every task) to the runtime's PUB socket;
    ``udp://HOST:PORT`` binds a UDP socket there (no host: 127.0.0.1; 0.0.0.0 for all
    interfaces) and reads
    the datagrams the runtime sends to it.

    Raises:
        ValueError: an unknown scheme or a missing port.
    """
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme in ("zmq", "zmq+tcp", "zmq+ipc"):
        import zmq  # lazy: only the ZeroMQ source needs pyzmq

        if scheme == "zmq+ipc":
            address = f"ipc://{parts.netloc}{parts.path}"
        else:
            address = f"tcp://{parts.netloc}"
            if not parts.port:
                raise ValueError(f"{spec!r}: no port; the form is {scheme}://HOST:PORT")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        if curve_server_key or curve_client_cert:
            if not (curve_server_key and curve_client_cert):
                sub.close()
                ctx.term()
                raise ValueError("CURVE needs both the server's public key and this client's "
                                 "certificate")
            import zmq.auth

            server_public, _ = zmq.auth.load_certificate(curve_server_key)
            public, secret = zmq.auth.load_certificate(curve_client_cert)
            if not secret:
                sub.close()
                ctx.term()
                raise ValueError(f"{curve_client_cert}: holds no secret key (give the "
                                 f".key_secret file)")
            sub.curve_serverkey = server_public
            sub.curve_publickey = public
            sub.curve_secretkey = secret
        # ZeroMQ itself drops a peer that sends a larger frame, before Python sees it.
        sub.setsockopt(zmq.MAXMSGSIZE, MAX_PAYLOAD_BYTES)
        sub.setsockopt(zmq.SUBSCRIBE, ZMQ_TOPIC_PREFIX.encode())
        sub.connect(address)

        def drain_zmq(timeout: float = 0.0) -> list[bytes]:
            out: list[bytes] = []
            if timeout > 0 and not sub.poll(int(timeout * 1000)):
                return out
            while True:
                try:
                    frames = sub.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    return out
                out.append(frames[-1])

        def close_zmq() -> None:
            sub.close()
            ctx.term()

        return drain_zmq, close_zmq
    if scheme == "udp":
        if not parts.port:
            raise ValueError(f"{spec!r}: no port; the form is udp://HOST:PORT")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((parts.hostname or "127.0.0.1", parts.port))
        sock.setblocking(False)

        def drain_udp(timeout: float = 0.0) -> list[bytes]:
            out: list[bytes] = []
            if timeout > 0 and not select.select([sock], [], [], timeout)[0]:
                return out
            while True:
                try:
                    out.append(sock.recv(65535))
                except BlockingIOError:
                    return out

        return drain_udp, sock.close
    raise ValueError(f"{spec!r}: use zmq+tcp://HOST:PORT, zmq+ipc:///PATH or udp://HOST:PORT")


def main(argv: list[str] | None = None) -> int:
    """Run the bridge node until Ctrl-C; ROS arguments (after ``--ros-args``) go to rclpy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", default="zmq+tcp://127.0.0.1:5556",
                        help="where skelmtl publishes: zmq+tcp://HOST:PORT, zmq+ipc:///PATH "
                             "or udp://HOST:PORT")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="ROS 2 topic for all events")
    parser.add_argument("--curve-server-key", metavar="FILE",
                        help="the publisher's public certificate (its CURVE is on)")
    parser.add_argument("--curve-client-cert", metavar="FILE",
                        help="this node's secret certificate (.key_secret)")
    parser.add_argument("--no-per-task", action="store_true",
                        help="do not also publish on <topic>/<task>")
    argv = sys.argv[1:] if argv is None else argv
    # `ros2 run` / launch files append --ros-args ...; those belong to rclpy.
    args, ros_args = parser.parse_known_args(argv)
    if ros_args and "--ros-args" not in ros_args:
        parser.error(f"unrecognized arguments: {' '.join(ros_args)}")

    import rclpy  # lazy: this file must import where ROS 2 is not installed
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String

    rclpy.init(args=[sys.argv[0], *ros_args])
    node = Node("skelmtl_bridge")
    qos = QoSProfile(depth=50)
    main_pub = node.create_publisher(String, args.topic, qos)
    per_task = TopicTable(lambda topic: node.create_publisher(String, topic, qos))
    drain, close = open_source(args.events, curve_server_key=args.curve_server_key,
                               curve_client_cert=args.curve_client_cert)
    log = node.get_logger()
    log.info(f"bridging {args.events} -> {args.topic}")

    def pump() -> None:
        for payload in drain():
            try:
                event = decode_payload(payload)
            except ValueError as e:
                log.warning(f"skipping a malformed event: {e}")
                continue
            msg = event_to_string_msg(event, String)
            main_pub.publish(msg)
            if not args.no_per_task:
                topic = task_topic(args.topic, event)
                pub = per_task.get(topic)
                if pub is not None:
                    pub.publish(msg)
                elif per_task.refused == 1:
                    log.warning(f"more than {per_task.limit} task topics; events of new "
                                f"tasks ({topic}, ...) go to {args.topic} only")

    node.create_timer(POLL_PERIOD_S, pump)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
