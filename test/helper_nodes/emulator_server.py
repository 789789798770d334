"""Test helper: an emulated servo bus in a process of its own (so it does not share a GIL
with the test's ROS executor), driven by JSON lines on stdin:
    {"op": "read_register", "args": [servo_id, address, size]}  ->  {"result": value}
Any public method of EmulatedServoBus can be called this way."""
import json
import sys

from hilserl_ros.hardware.emulator import EmulatedServoBus


def main() -> int:
    bus = EmulatedServoBus(link_path=sys.argv[1])
    bus.start()
    print(json.dumps({"ready": bus.port}), flush=True)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            try:
                result = getattr(bus, request["op"])(*request.get("args", []))
                print(json.dumps({"result": result if isinstance(result, (int, float, str, type(None))) else None}),
                      flush=True)
            except Exception as err:  # reported to the test, which fails on it
                print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
    finally:
        bus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
