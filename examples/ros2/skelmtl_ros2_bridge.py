"""ROS 2 bridge: republish skelmtl events from ZeroMQ (or UDP) on ROS 2 topics.

Usage: python3 skelmtl_ros2_bridge.py --events zmq+tcp://127.0.0.1:5556 [--topic /skelmtl/events]

Run ``skelmtl run ... --publish 'zmq+tcp://*:5556'`` (or the Jetson container) first, then
this node in a sourced ROS 2 environment (Humble or newer). Each event becomes one
``std_msgs/msg/String`` whose ``data`` is the event's JSON, published on ``--topic``
(all events) and on ``<topic>/<task>`` (``/skelmtl/events/action``, ``.../gesture``,
``.../state``). README.md beside this file documents the JSON and a proposed typed message.

rclpy and pyzmq are imported inside :func:`main`, so this file imports without ROS; the
conversion functions below are plain Python and are what the tests check.
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


def decode_payload(payload: bytes | str) -> dict[str, Any]:
    """Parse one event (the JSON frame of a ZeroMQ message, or one UDP datagram).

    Raises:
        ValueError: not a JSON object.
    """
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError(f"event is a JSON {type(event).__name__}, not an object")
    return event


def task_topic(base: str, event: Mapping[str, Any]) -> str:
    """``<base>/<task>`` for ``begin``/``end`` events (``.../action``, ``.../gesture``), else
    ``<base>/<kind>`` (``.../state``, ``.../drop``, ``.../stream``), reduced to characters
    legal in a ROS 2 topic name; the same split as the ZeroMQ topics of ``edge.publish``."""
    task = str(event.get("task") or event.get("kind") or "state")
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in task).strip("_") or "state"
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


def open_source(spec: str) -> tuple[Callable[..., list[bytes]], Callable[[], None]]:
    """``drain(timeout=0.0) -> [json payloads]`` and ``close()`` for a source spec.

    ``drain`` returns every payload already received; with ``timeout`` (seconds) it first
    waits up to that long for one to arrive. The ROS timer calls it with no timeout.

    ``zmq+tcp://HOST:PORT`` (or ``zmq://``) and ``zmq+ipc:///PATH`` connect a SUB socket
    (subscribed to ``skelmtl``, i.e. every task) to the runtime's PUB socket;
    ``udp://HOST:PORT`` binds a UDP socket there (use 0.0.0.0 for all interfaces) and reads
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
        sock.bind((parts.hostname or "0.0.0.0", parts.port))
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
    publishers: dict[str, Any] = {args.topic: node.create_publisher(String, args.topic, qos)}
    drain, close = open_source(args.events)
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
            publishers[args.topic].publish(msg)
            if not args.no_per_task:
                topic = task_topic(args.topic, event)
                if topic not in publishers:
                    publishers[topic] = node.create_publisher(String, topic, qos)
                publishers[topic].publish(msg)

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
