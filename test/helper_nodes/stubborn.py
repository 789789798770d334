"""Test process: ignores SIGINT and SIGTERM, so only the launcher's SIGKILL stops it."""
import signal
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("stubborn: ignoring SIGINT and SIGTERM", flush=True)
while True:
    time.sleep(0.2)
