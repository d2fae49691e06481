# Counting SMTP sink (aiosmtpd): accepts every message, counts it, and
# appends "unix_time count" to COUNT_FILE every 0.25 s.
# usage: python sink.py PORT COUNT_FILE
import sys
import time

from aiosmtpd.controller import Controller

count = 0


class Counter:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        return "250 OK"


port, out = int(sys.argv[1]), sys.argv[2]
controller = Controller(Counter(), hostname="127.0.0.1", port=port)
controller.start()
with open(out, "a") as f:
    while True:
        f.write(f"{time.time():.3f} {count}\n")
        f.flush()
        time.sleep(0.25)
