"""Event publishers: how recognised actions and gestures leave the process.

Usage: skelmtl run --model M --source 0 --publish zmq+tcp://127.0.0.1:5556

``skelmtl run --publish SPEC`` opens one with :func:`open_publisher` (several specs:
:func:`open_publishers`); every event (a dict, or an object with ``to_dict()``, whose schema
``edge/core/events.py`` versions) goes out as one compact JSON object. Specs, by scheme
(:data:`PUBLISHERS` maps scheme -> class):

===================================  ==========================================================
spec                                 what it does
===================================  ==========================================================
``-`` (or ``stdout``)                JSON lines on standard output, flushed per event
``jsonl:PATH`` (or ``PATH.jsonl``,   JSON lines written to PATH (``?append=1`` appends,
``file://PATH``)                     otherwise the file is truncated)
``zmq+tcp://HOST:PORT``              ZeroMQ PUB socket bound at tcp://HOST:PORT; no host
(or ``zmq://HOST:PORT``)             (``zmq://:5556``) = localhost only, ``*`` = all
                                     interfaces (say so: other machines can then listen),
                                     ``*`` as port = any free port; two frames per event:
                                     topic, JSON
``zmq+ipc:///PATH``                  the same on a Unix socket (same-host consumers)
``udp://HOST:PORT``                  one UDP datagram per event (the JSON line) to HOST:PORT;
                                     unicast, broadcast or multicast
===================================  ==========================================================

Query options: ``zmq+tcp://...?topic=PREFIX&hwm=N&linger_ms=N`` (defaults ``skelmtl``,
1000, 250); ``udp://...?ttl=N`` (multicast hops, default 1); ``jsonl:...?append=1``.

Security: a ZeroMQ socket bound beyond the loopback interface serves every machine that
can reach the port. ``?curve_secret=server.key_secret`` turns on CURVE encryption (the
certificate files of ``zmq.auth.create_certificates``; subscribers need the server's
public key), and ``&curve_clients=DIR`` admits only the clients whose public certificates
are in DIR. Binding to all interfaces without CURVE logs a warning. ``docs/runtime.md``
shows both.

Why ZeroMQ PUB is the network transport we recommend (UDP is kept as the zero-dependency
fallback, for consumers that cannot link ZeroMQ, e.g. a microcontroller or a game engine):

* **No broker, many subscribers.** The runtime binds one PUB socket; any number of
  consumers (a ROS 2 bridge, a logger, a dashboard) connect with SUB sockets and come and
  go freely. UDP unicast reaches one listener; broadcast/multicast reach several but need
  network configuration and cross subnets badly.
* **Framing and topics.** Each event is one ZeroMQ message of two frames, ``[topic, JSON]``,
  delivered whole or not at all. The topic is ``<prefix>.<task or kind>`` (``skelmtl.action``,
  ``skelmtl.gesture``, ``skelmtl.state``, ... see :func:`event_topic`), so a consumer
  subscribes by prefix and, over TCP,
  the filtering happens at the publisher. UDP gives datagram framing too, but no topics
  (the consumer filters on the JSON ``task`` field).
* **Reconnection.** ZeroMQ reconnects by itself when a subscriber or the publisher
  restarts; with UDP there is no connection to lose, but also no knowledge of listeners.
* **Backpressure never stalls the camera loop.** A PUB socket never blocks: when a slow
  subscriber's queue reaches the send high-water mark (``hwm``, in messages), further
  events *for that subscriber* are dropped, others are unaffected. UDP drops silently in the
  kernel or on the wire. Either way the real-time loop wins, which is what a robot wants:
  a stale gesture is worse than a missed one.
* **Slow joiner (the cost).** A subscriber that connects misses everything published before
  its subscription reached the publisher (a few milliseconds after connect). Events are a
  live stream, so this is acceptable; consumers that need history read the JSON-lines file.

Thread safety: every publisher serialises :meth:`Publisher.publish` with a lock, so one
publisher may be shared by threads. NaN and infinity are refused because JSON has no
spelling for them that every consumer parses.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import math
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

from edge.core.errors import SkelmtlError

DEFAULT_TOPIC_PREFIX = "skelmtl"
DEFAULT_HWM = 1000
DEFAULT_LINGER_MS = 250
# The largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP header).
MAX_UDP_PAYLOAD = 65507
_P = TypeVar("_P", bound="Publisher")
# A ZeroMQ address without a host binds here: other machines see nothing unless asked.
DEFAULT_ZMQ_HOST = "127.0.0.1"

logger = logging.getLogger(__name__)


class PublishError(SkelmtlError):
    """A publisher spec that cannot be opened, or an event that cannot be sent."""


class PipeClosed(PublishError):
    """The reader of a pipe went away (``skelmtl run --publish - | head``): not a failure."""


def event_to_dict(event: Any) -> dict[str, Any]:
    """A JSON-able dict from a mapping or an object with ``to_dict()``.

    Raises:
        PublishError: the event is neither.
    """
    if isinstance(event, Mapping):
        return dict(event)
    to_dict = getattr(event, "to_dict", None)
    if callable(to_dict):
        d = to_dict()
        if isinstance(d, Mapping):
            return dict(d)
        raise PublishError(f"{type(event).__name__}.to_dict() returned "
                           f"{type(d).__name__}, not a dict")
    raise PublishError(f"cannot publish a {type(event).__name__}: give a dict or an object "
                       "with to_dict()")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths: what event producers plausibly leave in a dict.
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode_event(event: Any) -> str:
    """One compact JSON object (no trailing newline) for ``event``.

    Raises:
        PublishError: not JSON-able, or holds NaN/infinity.
    """
    d = event_to_dict(event)
    try:
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    except ValueError as e:
        bad = [k for k, v in d.items() if isinstance(v, float) and not math.isfinite(v)]
        raise PublishError(f"event has non-finite numbers (fields {bad or '?'}); "
                           f"JSON cannot carry them: {e}") from None
    except TypeError as e:
        raise PublishError(f"event is not JSON-able: {e}") from None


def event_topic(event: Mapping[str, Any], prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """``<prefix>.<task>`` for ``begin``/``end`` events, else ``<prefix>.<kind>``.

    With the runtime's events (:mod:`edge.core.events`) the topics are ``skelmtl.action``,
    ``skelmtl.gesture`` (recognitions), ``skelmtl.state``, ``skelmtl.drop`` and
    ``skelmtl.stream``; a dict with neither field goes to ``<prefix>.state``. Characters
    other than letters, digits, ``_`` and ``-`` become ``_`` so that a prefix subscription
    cannot be fooled by a task name containing the separator.
    """
    task = event.get("task") or event.get("kind") or "state"
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(task))
    return f"{prefix}.{safe}" if prefix else safe


class Publisher:
    """Base class: ``publish(event)`` sends one event; ``close()`` releases the transport.

    Subclasses implement :meth:`_send` (given the event dict and its JSON text) and
    :meth:`_close`, and build themselves from a parsed spec in :meth:`from_spec`.
    """

    scheme: ClassVar[str] = ""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.sent = 0
        self.dropped = 0
        self.closed = False
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str, parts: SplitResult, options: dict[str, str]) -> Publisher:
        """Open a publisher from ``spec`` split by :func:`urllib.parse.urlsplit`."""
        raise NotImplementedError

    def publish(self, event: Any) -> None:
        """Send one event (a dict or an object with ``to_dict()``).

        Raises:
            PublishError: the event cannot be encoded, or the publisher is closed, or the
                transport failed in a way that is not a (counted) drop.
        """
        d = event_to_dict(event)
        text = encode_event(d)
        with self._lock:
            if self.closed:
                raise PublishError(f"{self.spec}: publisher is closed")
            if self._send(d, text):
                self.sent += 1
            else:
                self.dropped += 1

    def _send(self, event: dict[str, Any], text: str) -> bool:
        """Send; True when handed to the transport, False when dropped."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the transport; idempotent."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._close()

    def _close(self) -> None:
        pass

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, sent={self.sent}, dropped={self.dropped})"


class JsonLinesPublisher(Publisher):
    """JSON lines (one event per line, UTF-8) on stdout or in a file, flushed per event."""

    scheme = "jsonl"

    def __init__(self, spec: str, stream: IO[str], owned: bool) -> None:
        super().__init__(spec)
        self._stream = stream
        self._owned = owned
        self._failed = False

    @classmethod
    def from_spec(cls, spec: str, parts: SplitResult, options: dict[str, str]) -> Publisher:
        if parts.scheme == "stdout":
            return cls(spec, sys.stdout, owned=False)
        # jsonl:PATH -> path "PATH"; file:///abs -> "/abs"; file://rel/x -> "rel" + "/x";
        # a bare "events.jsonl" arrives with no scheme.
        raw = parts.netloc + parts.path if parts.scheme else spec
        if not raw:
            raise PublishError(f"{spec!r}: no file path given (the form is jsonl:PATH)")
        path = Path(raw)
        mode = "a" if _flag(spec, options, "append") else "w"
        if not path.parent.is_dir():
            raise PublishError(f"{spec!r}: folder {path.parent} does not exist")
        try:
            stream = open(path, mode, encoding="utf-8", newline="\n")
        except OSError as e:
            raise PublishError(f"{spec!r}: cannot open {path}: {e.strerror}") from None
        return cls(spec, stream, owned=True)

    def _send(self, event: dict[str, Any], text: str) -> bool:
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except BrokenPipeError:
            raise PipeClosed(f"{self.spec}: the reader closed the pipe") from None
        except OSError as e:
            self._failed = True
            raise PublishError(f"{self.spec}: write failed: {e.strerror}") from None
        return True

    def _close(self) -> None:
        if self._owned:
            try:
                self._stream.close()  # flushes: a full disk can show here first
            except OSError as e:
                if not self._failed:  # else the write already said so; say it once
                    raise PublishError(f"{self.spec}: write failed: {e.strerror}") from None
        else:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass


class ZmqPublisher(Publisher):
    """ZeroMQ PUB socket bound at ``tcp://HOST:PORT`` or ``ipc://PATH``; frames
    ``[topic, JSON]`` per event.

    ``endpoint`` is the address actually bound (with the real port when ``*`` was asked),
    e.g. ``tcp://127.0.0.1:41234``: what a subscriber connects to.
    """

    scheme = "zmq+tcp"

    def __init__(self, spec: str, bind: str, topic_prefix: str = DEFAULT_TOPIC_PREFIX,
                 hwm: int = DEFAULT_HWM, linger_ms: int = DEFAULT_LINGER_MS,
                 curve_secret: str | None = None, curve_clients: str | None = None) -> None:
        super().__init__(spec)
        self._auth: Any = None
        try:
            import zmq  # lazy: pyzmq is the optional 'publish' extra
        except ImportError:
            raise PublishError(f"{spec}: ZeroMQ needs pyzmq: pip install 'skelmtl[publish]'"
                               ) from None
        self._zmq = zmq
        self.topic_prefix = topic_prefix
        # A private context: closing this publisher must not touch anyone else's sockets.
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        if bind.startswith("tcp://["):
            self._sock.setsockopt(zmq.IPV6, 1)  # ZeroMQ binds IPv6 literals only with this
        try:
            if curve_secret:
                self._setup_curve(curve_secret, curve_clients)
            elif curve_clients:
                raise PublishError(f"{spec}: curve_clients needs curve_secret (the server's "
                                   f"secret certificate)")
            self._sock.bind(bind)
        except (zmq.ZMQError, PublishError) as e:
            self._close()
            if isinstance(e, PublishError):
                raise
            raise PublishError(f"{spec}: cannot bind {bind}: {e}") from None
        if not curve_secret and _binds_beyond_loopback(bind):
            logger.warning("%s: publishing on every interface without authentication; any "
                           "machine that reaches the port reads the events (see "
                           "docs/runtime.md: bind to an interface, or add ?curve_secret=)",
                           spec)
        last = self._sock.getsockopt(zmq.LAST_ENDPOINT)
        self.endpoint: str = last.decode() if isinstance(last, bytes) else str(last)

    @classmethod
    def from_spec(cls, spec: str, parts: SplitResult, options: dict[str, str]) -> Publisher:
        if parts.scheme == "zmq+ipc":
            path = parts.netloc + parts.path
            if not path:
                raise PublishError(f"{spec!r}: no socket path; the form is zmq+ipc:///PATH")
            if not Path(path).parent.is_dir():
                raise PublishError(f"{spec!r}: folder {Path(path).parent} does not exist")
            bind = f"ipc://{path}"
        else:
            host, port = _host_port(spec, parts, allow_any_port=True)
            # No host named: this machine only. 'localhost' is bound as its address: libzmq
            # before 4.3.5 (pyzmq 25, JetPack 5) binds addresses and interfaces, not names.
            host = DEFAULT_ZMQ_HOST if host in ("", "localhost") else host
            bind = f"tcp://{_bracket(host)}:{port}"
        return cls(spec, bind,
                   topic_prefix=options.get("topic", DEFAULT_TOPIC_PREFIX),
                   hwm=_int_option(spec, options, "hwm", DEFAULT_HWM, minimum=1),
                   linger_ms=_int_option(spec, options, "linger_ms", DEFAULT_LINGER_MS,
                                         minimum=0),
                   curve_secret=options.get("curve_secret") or None,
                   curve_clients=options.get("curve_clients") or None)

    def _send(self, event: dict[str, Any], text: str) -> bool:
        zmq = self._zmq
        topic = event_topic(event, self.topic_prefix).encode()
        try:
            # PUB never blocks: at the high-water mark ZeroMQ drops for that subscriber.
            self._sock.send_multipart([topic, text.encode()], flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            raise PublishError(f"{self.spec}: send failed: {e}") from None
        return True

    def _setup_curve(self, secret_file: str, clients: str | None) -> None:
        """CURVE encryption with the server's secret certificate; optionally admit only the
        clients whose public certificates are in the folder ``clients``."""
        zmq = self._zmq
        if not zmq.has("curve"):
            raise PublishError(f"{self.spec}: this libzmq has no CURVE support")
        import zmq.auth

        if not Path(secret_file).is_file():
            raise PublishError(f"{self.spec}: curve_secret {secret_file}: no such file")
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as e:
            raise PublishError(f"{self.spec}: curve_secret {secret_file}: not a ZeroMQ "
                               f"certificate ({e})") from None
        if not secret:
            raise PublishError(f"{self.spec}: curve_secret {secret_file}: holds no secret key "
                               f"(give the .key_secret file)")
        if clients is not None:
            if not Path(clients).is_dir():
                raise PublishError(f"{self.spec}: curve_clients {clients}: no such folder")
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(clients))
        self._sock.curve_secretkey = secret
        self._sock.curve_publickey = public
        self._sock.curve_server = True

    def _close(self) -> None:
        self._sock.close(0 if self._auth is not None else None)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()


def _binds_beyond_loopback(bind: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` bind address serves more than this machine."""
    if not bind.startswith("tcp://"):
        return False
    host = bind[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host in ("*", "0.0.0.0", "::"):
        return True
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # an interface name (eth0) or a host name: reachable from outside


class UdpPublisher(Publisher):
    """One UDP datagram per event: the JSON object and a newline (``nc -ul PORT`` prints it).

    The destination may be unicast, broadcast (e.g. ``udp://192.168.1.255:9999``) or
    multicast (``udp://239.255.0.1:9999?ttl=1``). Nothing is known about receivers: a send
    that the kernel refuses for lack of buffer space counts as dropped.
    """

    scheme = "udp"

    def __init__(self, spec: str, host: str, port: int, ttl: int = 1) -> None:
        super().__init__(spec)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise PublishError(f"{spec}: cannot resolve {host!r}: {e.strerror}") from None
        family, _, _, _, addr = infos[0]
        self.address: tuple[Any, ...] = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        if family == socket.AF_INET:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if _is_multicast(host):
            if family == socket.AF_INET:
                self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            else:
                self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)

    @classmethod
    def from_spec(cls, spec: str, parts: SplitResult, options: dict[str, str]) -> Publisher:
        host, port = _host_port(spec, parts, allow_any_port=False)
        if not host:
            raise PublishError(f"{spec}: UDP needs a destination host, e.g. udp://127.0.0.1:9999")
        return cls(spec, host, int(port),
                   ttl=_int_option(spec, options, "ttl", 1, minimum=0))

    def _send(self, event: dict[str, Any], text: str) -> bool:
        payload = (text + "\n").encode()
        if len(payload) > MAX_UDP_PAYLOAD:
            raise PublishError(f"{self.spec}: event of {len(payload)} bytes exceeds one UDP "
                               f"datagram ({MAX_UDP_PAYLOAD} bytes)")
        try:
            self._sock.sendto(payload, self.address)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            # ENOBUFS under load, ECONNREFUSED echoed from an earlier ICMP: a drop, not fatal.
            if e.errno in (errno.ENOBUFS, errno.ECONNREFUSED):
                return False
            raise PublishError(f"{self.spec}: send failed: {e.strerror}") from None
        return True

    def _close(self) -> None:
        self._sock.close()


class FanoutPublisher(Publisher):
    """Sends each event to several publishers (e.g. a JSON-lines file and ZeroMQ)."""

    scheme = ""

    def __init__(self, publishers: Sequence[Publisher]) -> None:
        super().__init__(" + ".join(p.spec for p in publishers))
        self.publishers = list(publishers)

    def _send(self, event: dict[str, Any], text: str) -> bool:
        closed: PipeClosed | None = None
        for p in self.publishers:
            try:
                p.publish(event)
            except PipeClosed as e:  # the others still get the event (the file, ZeroMQ)
                closed = closed or e
        if closed is not None:
            raise closed
        return True

    def _close(self) -> None:
        for p in self.publishers:
            p.close()


# Scheme -> publisher class. zmq:// is an alias of zmq+tcp://, file:// of jsonl:.
PUBLISHERS: dict[str, type[Publisher]] = {
    "stdout": JsonLinesPublisher,
    "jsonl": JsonLinesPublisher,
    "file": JsonLinesPublisher,
    "zmq+tcp": ZmqPublisher,
    "zmq": ZmqPublisher,
    "zmq+ipc": ZmqPublisher,
    "udp": UdpPublisher,
}


def open_publisher(spec: str) -> Publisher:
    """Open the publisher that ``spec`` names (the module docstring lists the forms).

    Args:
        spec: ``-``, ``jsonl:PATH[?append=1]``, ``zmq+tcp://HOST:PORT[?topic=P&hwm=N&
            linger_ms=N]``, ``zmq+ipc:///PATH``, ``udp://HOST:PORT[?ttl=N]``; also
            ``stdout``, ``file://PATH``, a bare ``PATH.jsonl`` and ``zmq://HOST:PORT``.

    Returns:
        An open :class:`Publisher`; close it (or use ``with``) when done.

    Raises:
        PublishError: unknown scheme, malformed address or option, missing pyzmq, or a
            transport that cannot be opened (port in use, folder missing).
    """
    spec = spec.strip()
    if spec in ("-", "stdout", "stdout:", "stdout://"):
        return JsonLinesPublisher.from_spec(spec, urlsplit("stdout://"), {})
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme not in PUBLISHERS:
        if not scheme and spec.endswith((".jsonl", ".ndjson")):
            return JsonLinesPublisher.from_spec(spec, urlsplit(""), {})
        raise PublishError(f"{spec!r}: not a publisher spec; use '-', jsonl:PATH, "
                           "zmq+tcp://HOST:PORT, zmq+ipc:///PATH or udp://HOST:PORT")
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = _OPTIONS[scheme]
    unknown = sorted(set(options) - known)
    if unknown:
        raise PublishError(f"{spec!r}: unknown option(s) {unknown} for {scheme}:; "
                           f"known: {sorted(known) or 'none'}")
    return PUBLISHERS[scheme].from_spec(spec, parts._replace(scheme=scheme), options)


def open_publishers(specs: Sequence[str]) -> Publisher:
    """One publisher for several specs (a fan-out), or the single one when there is one.

    Raises:
        PublishError: as :func:`open_publisher`; publishers already opened are closed.
    """
    if not specs:
        raise PublishError("no publisher spec given")
    if len(specs) == 1:
        return open_publisher(specs[0])
    opened: list[Publisher] = []
    try:
        for s in specs:
            opened.append(open_publisher(s))
    except PublishError:
        for p in opened:
            p.close()
        raise
    return FanoutPublisher(opened)


_ZMQ_OPTIONS = frozenset({"topic", "hwm", "linger_ms", "curve_secret", "curve_clients"})
_OPTIONS: dict[str, frozenset[str]] = {
    "stdout": frozenset(),
    "jsonl": frozenset({"append"}),
    "file": frozenset({"append"}),
    "zmq+tcp": _ZMQ_OPTIONS,
    "zmq": _ZMQ_OPTIONS,
    "zmq+ipc": _ZMQ_OPTIONS,
    "udp": frozenset({"ttl"}),
}


def _host_port(spec: str, parts: SplitResult, allow_any_port: bool) -> tuple[str, str]:
    netloc = parts.netloc
    if parts.path not in ("", "/"):
        raise PublishError(f"{spec!r}: unexpected path {parts.path!r}; the form is "
                           f"{parts.scheme}://HOST:PORT")
    host, sep, port = netloc.rpartition(":")
    if not sep:
        raise PublishError(f"{spec!r}: no port; the form is {parts.scheme}://HOST:PORT")
    host = host.strip("[]")
    if port == "*" and allow_any_port:
        return host, port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise PublishError(f"{spec!r}: port {port!r} is not a number in 1..65535")
    return host, port


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_multicast(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_multicast
    except ValueError:
        return False


def _int_option(spec: str, options: dict[str, str], name: str, default: int,
                minimum: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PublishError(f"{spec!r}: option {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise PublishError(f"{spec!r}: option {name}={value} must be >= {minimum}")
    return value


def _flag(spec: str, options: dict[str, str], name: str) -> bool:
    raw = options.get(name)
    if raw is None:
        return False
    if raw.lower() in ("", "1", "true", "yes"):
        return True  # a bare "?append" counts as set
    if raw.lower() in ("0", "false", "no"):
        return False
    raise PublishError(f"{spec!r}: option {name}={raw!r} must be 0 or 1")


__all__ = ["PUBLISHERS", "FanoutPublisher", "JsonLinesPublisher", "PipeClosed", "PublishError",
           "Publisher",
           "UdpPublisher", "ZmqPublisher", "encode_event", "event_to_dict", "event_topic",
           "open_publisher", "open_publishers"]
